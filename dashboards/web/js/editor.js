// The query editor shared by the Query and Logs pages: a textarea over a highlighted copy of
// its text (the textarea's own glyphs are transparent, so the colours show through), a
// completion list fed by the language module, and the API's error shown under the editor with
// the position it names marked in the text.

import { h, replace } from "./dom.js";
import { errorPosition } from "./promql.js";

const MAX_SUGGESTIONS = 60;

// `language` is promql.js's or logql.js's `language`; `onSubmit` runs on Enter.
export function createEditor({ language, value = "", placeholder = "", onSubmit, onChange }) {
  const code = h("code");
  const hl = h("pre", { class: "editor-hl", "aria-hidden": "true" }, code);
  const input = h("textarea", {
    class: "editor-input",
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    rows: "1",
    placeholder,
    "aria-label": `${language.name} expression`,
    "data-language": language.name,
  });
  input.value = value;
  const list = h("ul", { class: "completions", role: "listbox", hidden: true });
  const errorBox = h("div", { class: "editor-error", role: "alert", hidden: true });
  const box = h("div", { class: "editor" }, hl, input, list);
  const el = h("div", { class: "editor-wrap" }, box, errorBox);

  let errorAt = null; // offset of the character an error points at
  let items = [];
  let active = 0;
  let ctx = null;
  let seq = 0;

  function render() {
    const text = input.value;
    const spans = language.tokenize(text).map((t) => {
      if (errorAt !== null && errorAt >= t.start && errorAt < t.start + t.text.length) {
        const k = errorAt - t.start;
        const before = t.text.slice(0, k);
        const after = t.text.slice(k + 1);
        return [
          before ? h("span", { class: `t-${t.type}` }, before) : null,
          h("span", { class: `t-${t.type} t-errmark` }, t.text.slice(k, k + 1)),
          after ? h("span", { class: `t-${t.type}` }, after) : null,
        ];
      }
      return t.type === "ws" ? t.text : h("span", { class: `t-${t.type}` }, t.text);
    });
    const atEnd = errorAt !== null && errorAt >= text.length ? h("span", { class: "t-errmark" }, " ") : null;
    // A trailing newline needs a character after it or the overlay is a line short.
    replace(code, spans, atEnd, "\n");
    input.style.height = "auto";
    input.style.height = input.scrollHeight + "px";
  }

  function closeList() {
    items = [];
    list.hidden = true;
  }

  async function complete(explicit) {
    const pos = input.selectionStart;
    if (pos !== input.selectionEnd) return closeList();
    ctx = language.context(input.value, pos);
    if (!ctx || (!explicit && ctx.kind === "metric" && !ctx.prefix) || (!explicit && ctx.kind === "function" && !ctx.prefix)) return closeList();
    const mine = ++seq;
    const found = await language.suggest(ctx);
    if (mine !== seq) return; // typing moved on while we waited
    items = found.slice(0, MAX_SUGGESTIONS);
    if (!items.length) return closeList();
    active = 0;
    showList();
  }

  function showList() {
    replace(list, items.map((it, i) => h("li", {
      class: i === active ? "active" : null,
      role: "option",
      onmousedown: (e) => {
        e.preventDefault();
        accept(i);
      },
    }, h("span", { class: `kind kind-${it.kind}` }, it.kind[0]), it.text)));
    const { line, col } = caret();
    const style = getComputedStyle(input);
    const lh = parseFloat(style.lineHeight) || 18;
    list.style.top = `${(line + 1) * lh + parseFloat(style.paddingTop) + 2}px`;
    list.style.left = `${Math.min(col * charWidth(), Math.max(0, input.clientWidth - 260))}px`;
    list.hidden = false;
    const act = list.children[active];
    if (act && act.scrollIntoView) act.scrollIntoView({ block: "nearest" });
  }

  function caret() {
    const before = input.value.slice(0, input.selectionStart);
    const lines = before.split("\n");
    return { line: lines.length - 1, col: lines[lines.length - 1].length };
  }

  let cw = 0;
  function charWidth() {
    if (!cw) {
      const probe = h("span", { class: "editor-probe" }, "0".repeat(20));
      box.append(probe);
      cw = probe.getBoundingClientRect().width / 20 || 8;
      probe.remove();
    }
    return cw;
  }

  function accept(i) {
    const it = items[i];
    if (!it || !ctx) return;
    const text = input.value;
    const pos = input.selectionStart;
    let insert = it.insert;
    // Closing the quote the user opened, unless it is already there.
    if (ctx.kind === "labelValue" && ctx.quoted && text[pos] !== '"') insert += '"';
    input.value = text.slice(0, ctx.from) + insert + text.slice(pos);
    const at = ctx.from + insert.length;
    input.setSelectionRange(at, at);
    closeList();
    changed();
    // After `rate(` or `job=`, the next thing to type can be completed too.
    if (/[({,=]$/.test(insert)) complete(true);
  }

  function changed() {
    errorAt = null;
    render();
    if (onChange) onChange(input.value);
  }

  input.addEventListener("input", () => {
    changed();
    complete(false);
  });
  input.addEventListener("keydown", (e) => {
    const open = !list.hidden && items.length > 0;
    if (open && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      showList();
    } else if (open && (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey))) {
      e.preventDefault();
      accept(active);
    } else if (open && e.key === "Escape") {
      e.preventDefault();
      closeList();
    } else if (e.key === " " && e.ctrlKey) {
      e.preventDefault();
      complete(true);
    } else if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      closeList();
      if (onSubmit) onSubmit(input.value);
    }
  });
  // Closed a moment after focus leaves (a click on an option lands first), unless focus came
  // back meanwhile and the list is the one for the new text.
  input.addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== input) closeList();
  }, 100));
  input.addEventListener("scroll", () => {
    hl.scrollTop = input.scrollTop;
    hl.scrollLeft = input.scrollLeft;
  });
  render();

  return {
    el,
    get value() {
      return input.value;
    },
    set value(v) {
      input.value = v;
      errorAt = null;
      render();
    },
    focus() {
      input.focus();
    },
    // Shows the API's error text under the editor and marks the position it names, if any;
    // `null` clears it.
    setError(message) {
      errorAt = null;
      if (!message) {
        errorBox.hidden = true;
        replace(errorBox);
      } else {
        const pos = errorPosition(message);
        errorAt = pos ? offsetOf(input.value, pos[0], pos[1]) : guessErrorAt(language.tokenize(input.value), message, input.value.length);
        replace(errorBox, message);
        errorBox.hidden = false;
      }
      render();
    },
  };
}

// The offset of 1-based `line`, `col` in `text`, clamped to the text.
function offsetOf(text, line, col) {
  const lines = text.split("\n");
  let off = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length - 1); i++) off += lines[i].length + 1;
  return Math.min(off + Math.max(col - 1, 0), text.length);
}

// Where an error without a position most likely is: the first bracket left unclosed (or closed
// without opening), an unterminated string, the end when the text ends in an operator (its
// right operand is what is missing), or the end for "unexpected end of input". The PromQL
// parser's messages carry no position, so this keeps the mark next to the mistake.
export function guessErrorAt(tokens, message, length) {
  const open = [];
  const pairs = { ")": "(", "]": "[", "}": "{" };
  let last = null;
  for (const t of tokens) {
    if (t.type === "string" && !/^(["'`]).*\1$/s.test(t.text)) return t.start;
    if (t.type !== "ws" && t.type !== "comment") last = t;
    if ("([{".includes(t.text)) open.push(t);
    else if (pairs[t.text]) {
      const o = open.pop();
      if (!o || o.text !== pairs[t.text]) return t.start;
    }
  }
  if (open.length && /unclosed|end of input|expecting/i.test(message)) return open[0].start;
  if (last && last.type === "op" && last.text !== ",") return length;
  if (/end of input|unexpected end/i.test(message)) return length;
  return null;
}
