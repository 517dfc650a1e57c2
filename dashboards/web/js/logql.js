// LogQL for the editor: tokenizer, completion context and suggestions from the Loki API
// (`/loki/api/v1/labels`, `/loki/api/v1/label/<name>/values`), and the stream-selector
// surgery the label browser and the volume histogram need.

import { cachedList } from "./api.js";
import { stringEnd, isClosed, escapeString } from "./promql.js";
import { msToNs } from "./time.js";

export const RANGE_FUNCTIONS = [
  "absent_over_time", "avg_over_time", "bytes_over_time", "bytes_rate", "count_over_time",
  "first_over_time", "last_over_time", "max_over_time", "min_over_time", "quantile_over_time",
  "rate", "rate_counter", "stddev_over_time", "stdvar_over_time", "sum_over_time",
];
export const AGGREGATIONS = [
  "avg", "bottomk", "count", "max", "min", "sort", "sort_desc", "stddev", "stdvar", "sum", "topk",
];
export const STAGES = [
  "decolorize", "drop", "json", "keep", "label_format", "line_format", "logfmt", "pattern",
  "regexp", "unpack", "unwrap",
];
const KEYWORDS = ["and", "bool", "by", "group_left", "group_right", "ignoring", "offset", "on", "or", "unless", "without"];
const CALLS = new Set([...RANGE_FUNCTIONS, ...AGGREGATIONS, "label_replace", "vector"]);
const WORDS = new Set([...STAGES, ...KEYWORDS]);
const DURATIONS = ["1m", "5m", "10m", "1h"];

export function tokenize(text) {
  const out = [];
  let i = 0;
  const stack = [];
  // After a pipe, a bare word is a stage or (in `| level="x"`) an extracted label.
  let afterPipe = false;
  const push = (type, end) => {
    out.push({ type, text: text.slice(i, end), start: i });
    i = end;
  };
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let m;
    if ((m = /^\s+/.exec(rest))) {
      push("ws", i + m[0].length);
      continue;
    }
    if (c === "#") push("comment", text.indexOf("\n", i) === -1 ? text.length : text.indexOf("\n", i));
    else if (c === '"' || c === "`") push("string", stringEnd(text, i));
    else if ((m = /^(\d+(\.\d+)?(ms|[smhdwy]))+(?![\w.])/.exec(rest))) push("duration", i + m[0].length);
    else if ((m = /^\d+(\.\d+)?([eE][+-]?\d+)?/.exec(rest))) push("number", i + m[0].length);
    else if ((m = /^[a-zA-Z_][\w]*/.exec(rest))) {
      const word = m[0];
      const top = stack[stack.length - 1];
      let type = "label";
      if (top === "{") type = "label";
      else if (CALLS.has(word) && /^\s*(\(|by\b|without\b)/.test(text.slice(i + word.length))) type = "function";
      else if (WORDS.has(word)) type = "keyword";
      else if (!afterPipe && top !== "labels") type = "error";
      push(type, i + word.length);
      afterPipe = afterPipe && type !== "keyword";
      continue;
    } else if ((m = /^(\|=|\|~|!=|!~|\|>|!>)/.exec(rest))) {
      afterPipe = false;
      push("pipe", i + 2);
      continue;
    } else if (c === "|") {
      push("pipe", i + 1);
      afterPipe = true;
      continue;
    } else if (c === "{" || c === "(" || c === "[") {
      const prev = out.filter((t) => t.type !== "ws").pop();
      stack.push(c === "(" && prev && /^(by|without|on|ignoring|group_left|group_right)$/.test(prev.text) ? "labels" : c);
      push(c === "{" ? "brace" : c === "(" ? "paren" : "bracket", i + 1);
    } else if (c === "}" || c === ")" || c === "]") {
      stack.pop();
      push(c === "}" ? "brace" : c === ")" ? "paren" : "bracket", i + 1);
    } else if ((m = /^(==|<=|>=|=~|[-+*/%^<>=,])/.exec(rest))) push("op", i + m[0].length);
    else push("error", i + 1);
  }
  return out;
}

// The completion context at `pos`, in the same shape as promql.js's.
export function context(text, pos) {
  const toks = tokenize(text.slice(0, pos));
  const last = toks[toks.length - 1];
  let depthBrace = 0;
  let openBracket = false;
  for (const t of toks) {
    if (t.text === "{") depthBrace++;
    else if (t.text === "}") depthBrace--;
    else if (t.text === "[") openBracket = true;
    else if (t.text === "]") openBracket = false;
  }
  const solid = toks.filter((t) => t.type !== "ws");
  if (last && last.type === "string" && !isClosed(last.text)) {
    const op = solid[solid.length - 2];
    const label = solid[solid.length - 3];
    if (depthBrace > 0 && op && op.type === "op" && label && label.type === "label") {
      return { kind: "labelValue", from: last.start + 1, prefix: last.text.slice(1), label: label.text, quoted: true };
    }
    return null;
  }
  if (openBracket) {
    const typed = last && (last.type === "duration" || last.type === "number") ? last : null;
    return { kind: "duration", from: typed ? typed.start : pos, prefix: typed ? typed.text : "" };
  }
  const word = last && ["label", "function", "keyword", "error"].includes(last.type) ? last : null;
  const from = word ? word.start : pos;
  const prefix = word ? word.text : "";
  const prev = word ? solid[solid.length - 2] : solid[solid.length - 1];
  if (depthBrace > 0) {
    if (prev && prev.type === "op" && prev.text !== ",") {
      const label = solid[solid.indexOf(prev) - 1];
      return label && label.type === "label" ? { kind: "labelValue", from: pos, prefix: "", label: label.text, quoted: false } : null;
    }
    return { kind: "labelName", from, prefix };
  }
  if (prev && prev.type === "pipe" && prev.text === "|") return { kind: "stage", from, prefix };
  if (prev && prev.type === "paren" && prev.text === "(") {
    const kw = solid[solid.indexOf(prev) - 1];
    if (kw && /^(by|without)$/.test(kw.text)) return { kind: "labelName", from, prefix };
  }
  if (!last || last.type === "ws" || word || ["paren", "op"].includes(last.type)) return { kind: "function", from, prefix };
  return null;
}

// The time range label lists are asked for; the logs page keeps it current.
let range = null;
export function setRange(startMs, endMs) {
  range = { start: msToNs(startMs), end: msToNs(endMs) };
}

export async function suggest(ctx) {
  const p = ctx.prefix.toLowerCase();
  const keep = (s) => s.toLowerCase().startsWith(p) && s !== ctx.prefix;
  if (ctx.kind === "duration") return DURATIONS.filter(keep).map((d) => ({ text: d, kind: "duration", insert: d }));
  if (ctx.kind === "labelName") {
    const names = await cachedList("/loki/api/v1/labels", range);
    return names.filter(keep).map((n) => ({ text: n, kind: "label", insert: n }));
  }
  if (ctx.kind === "labelValue") {
    const values = await cachedList(`/loki/api/v1/label/${encodeURIComponent(ctx.label)}/values`, range);
    return values.filter((v) => v.toLowerCase().startsWith(p)).map((v) => ({ text: v, kind: "value", insert: ctx.quoted ? escapeString(v) : `"${escapeString(v)}"` }));
  }
  if (ctx.kind === "stage") return STAGES.filter(keep).map((s) => ({ text: s, kind: "keyword", insert: s }));
  const out = [];
  for (const f of [...AGGREGATIONS, ...RANGE_FUNCTIONS]) if (keep(f)) out.push({ text: f, kind: "function", insert: f + "(" });
  if (p) for (const k of KEYWORDS) if (keep(k)) out.push({ text: k, kind: "keyword", insert: k });
  return out;
}

// The stream selector `{…}` of a query as `[start, end)` offsets, or null.
export function selectorSpan(query) {
  const open = query.indexOf("{");
  if (open < 0) return null;
  for (let j = open + 1; j < query.length; j++) {
    if (query[j] === '"' || query[j] === "`") j = stringEnd(query, j) - 1;
    else if (query[j] === "}") return [open, j + 1];
  }
  return null;
}

// The `name op "value"` matchers of a selector text, in order.
export function parseMatchers(selector) {
  const out = [];
  const re = /([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)/g;
  let m;
  while ((m = re.exec(selector)) !== null) {
    const raw = m[3];
    const value = raw[0] === "`" ? raw.slice(1, -1) : raw.slice(1, -1).replace(/\\(.)/g, (_, ch) => (ch === "n" ? "\n" : ch));
    out.push({ name: m[1], op: m[2], value });
  }
  return out;
}

export function formatSelector(matchers) {
  return "{" + matchers.map((m) => `${m.name}${m.op}"${escapeString(m.value)}"`).join(", ") + "}";
}

// Adds `name="value"` to the query's selector, or removes it when it is there already (the
// label browser's click); values of one label are alternated with `=~` as Grafana's browser does.
export function toggleMatcher(query, name, value) {
  const span = selectorSpan(query);
  const matchers = span ? parseMatchers(query.slice(span[0], span[1])) : [];
  const idx = matchers.findIndex((m) => m.name === name);
  const reEscape = (v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if (idx < 0) {
    matchers.push({ name, op: "=", value });
  } else {
    const m = matchers[idx];
    const values = m.op === "=" ? [reEscape(m.value)] : m.op === "=~" ? m.value.split("|") : [];
    const mine = reEscape(value);
    const next = values.includes(mine) ? values.filter((v) => v !== mine) : [...values, mine];
    if (next.length === 0) matchers.splice(idx, 1);
    else if (next.length === 1) matchers[idx] = { name, op: "=", value: next[0].replace(/\\(.)/g, "$1") };
    else matchers[idx] = { name, op: "=~", value: next.join("|") };
  }
  const sel = formatSelector(matchers);
  return span ? query.slice(0, span[0]) + sel + query.slice(span[1]) : sel + query;
}

// True when the query yields log lines rather than samples (it starts at its selector).
export function isLogQuery(query) {
  const span = selectorSpan(query);
  return span !== null && query.slice(0, span[0]).trim() === "";
}

export const language = { name: "logql", tokenize, context, suggest };
