// The Logs page: a LogQL editor, a label browser that builds the stream selector by clicking,
// the volume histogram (`sum by (level) (count_over_time(<query> [step]))`), and the lines
// newest first, each expandable to its labels, the fields parsed from it (JSON or logfmt) and a
// link to its pod's metrics, and a live tail that puts new lines on top. A metric query draws a
// graph instead. State lives in the URL: `query`, `range_input`, `end_input`, `limit`.

import { h, replace } from "./dom.js";
import { get, post } from "./api.js";
import { createEditor } from "./editor.js";
import { language, setRange, toggleMatcher, selectorSpan, parseMatchers, isLogQuery } from "./logql.js";
import { renderGraph, renderLegend } from "./graph.js";
import { renderHistogram } from "./histogram.js";
import { createRangePicker, resolveRange } from "./rangepicker.js";
import { autoStep, formatTime, formatDuration, msToNs } from "./time.js";
import { podMetricsLink } from "./podlinks.js";
import { openTail, prependBounded, cmpNs } from "./tail.js";

const DEFAULT_LIMIT = "1000";
// The most lines a live tail keeps in the page when the limit asks for more.
const MAX_TAIL_LINES = 5000;
// About this many histogram bars across the range, on round steps.
const VOLUME_BARS = 60;
const VOLUME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400].map((s) => s * 1000);

export function volumeStep(rangeMs) {
  return VOLUME_STEPS.find((s) => rangeMs / s <= VOLUME_BARS) || Math.ceil(rangeMs / VOLUME_BARS / 86400000) * 86400000;
}

// Grafana's volume query: the log query's own pipeline, counted per step and level.
export function volumeQuery(query, stepMs) {
  return `sum by (level) (count_over_time(${query.trim()} [${formatDuration(stepMs)}]))`;
}

// Fields parsed from a line, named as Loki's `| json` and `| logfmt` stages name them: a JSON
// object's nested objects flattened with `_` between the keys (`{"http":{"status":504}}` gives
// `http_status`), arrays kept as JSON text; else logfmt pairs. Characters a label name cannot
// hold become `_`, so a field's name can be used in a label filter as shown. Empty when the
// line is neither.
export function parseFields(line) {
  const t = line.trim();
  if (t.startsWith("{")) {
    try {
      const obj = JSON.parse(t);
      if (obj && typeof obj === "object" && !Array.isArray(obj)) return flattenJson(obj, "");
    } catch {
      // Not JSON after all; try logfmt.
    }
  }
  const out = [];
  const re = /(?:^|\s)([\w.\-/]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)/g;
  let m;
  while ((m = re.exec(line)) !== null) {
    out.push([fieldName(m[1]), m[2].startsWith('"') ? m[2].slice(1, -1).replace(/\\(.)/g, "$1") : m[2]]);
  }
  return out;
}

function flattenJson(obj, prefix) {
  const out = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix + fieldName(k);
    if (v && typeof v === "object" && !Array.isArray(v)) out.push(...flattenJson(v, key + "_"));
    else out.push([key, typeof v === "string" ? v : JSON.stringify(v)]);
  }
  return out;
}

const fieldName = (k) => k.replace(/[^A-Za-z0-9_]/g, "_");

function formatNs(ns) {
  const ms = Number(ns.slice(0, -6) || "0");
  return `${formatTime(ms)}.${ns.slice(-9, -6).padStart(3, "0")}`;
}

export function mount(root, params) {
  const state = {
    query: params.get("query") || "",
    range: params.get("range_input") || "1h",
    end: params.get("end_input") || "",
    limit: params.get("limit") || DEFAULT_LIMIT,
  };
  const volume = h("div", { class: "volume", "data-state": "idle" });
  const lines = h("div", { class: "lines", "data-state": "idle" });
  const stats = h("div", { class: "stats" });
  const browser = h("div", { class: "label-browser" });
  let controller = null;

  const save = (push) => {
    const p = new URLSearchParams({ query: state.query, range_input: state.range });
    if (state.end) p.set("end_input", state.end);
    if (state.limit !== DEFAULT_LIMIT) p.set("limit", state.limit);
    const url = `/logs?${p}`;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  };

  const editor = createEditor({
    language,
    value: state.query,
    placeholder: '{namespace="default"} |= "error"',
    onSubmit: () => run(true),
  });

  async function run(push) {
    stopTail();
    state.query = editor.value.trim();
    save(push);
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    editor.setError(null);
    replace(stats);
    const r = resolveRange({ range: state.range, end: state.end, step: "" }, autoStep);
    if (r.error) {
      lines.dataset.state = "error";
      return replace(lines, h("div", { class: "error" }, r.error));
    }
    setRange(r.start, r.end);
    loadBrowser(r);
    if (!state.query) {
      replace(volume);
      lines.dataset.state = "idle";
      return replace(lines, h("p", { class: "hint" }, "Pick labels on the left or type a LogQL query, then press Enter."));
    }
    const range = { start: msToNs(r.start), end: msToNs(r.end) };
    if (!isLogQuery(state.query)) {
      replace(volume);
      return runMetric(r, range, signal);
    }
    // The lines and the histogram load side by side; either may fail alone.
    loadVolume(r, range, signal);
    lines.dataset.state = "loading";
    const began = performance.now();
    try {
      const data = await post("/loki/api/v1/query_range", {
        query: state.query, ...range, limit: state.limit, direction: "backward",
      }, signal);
      showLines(data.result || []);
      replace(stats, `Load time: ${Math.round(performance.now() - began)}ms · Lines: ${lines.dataset.count} (limit ${state.limit})`);
      lines.dataset.state = "done";
    } catch (e) {
      if (e.name === "AbortError") return;
      lines.dataset.state = "error";
      replace(lines);
      editor.setError(e.message);
    }
  }

  async function loadVolume(r, range, signal) {
    const step = volumeStep(r.end - r.start);
    volume.dataset.state = "loading";
    try {
      const data = await post("/loki/api/v1/query_range", { query: volumeQuery(state.query, step), ...range, step: step / 1000 }, signal);
      if (data.resultType !== "matrix") throw new Error(`the volume query gave a ${data.resultType}, not a matrix`);
      renderHistogram(volume, data.result, { start: r.start, end: r.end, step });
      volume.dataset.state = "done";
    } catch (e) {
      if (e.name === "AbortError") return;
      volume.dataset.state = "error";
      replace(volume, h("div", { class: "error volume-error" }, `Log volume: ${e.message}`));
    }
  }

  async function runMetric(r, range, signal) {
    lines.dataset.state = "loading";
    try {
      const data = await post("/loki/api/v1/query_range", { query: state.query, ...range, step: r.step / 1000 }, signal);
      const legend = h("div", { class: "legend-box" });
      const plot = h("div", { class: "result" });
      replace(lines, plot, legend);
      const result = data.resultType === "matrix" ? data.result : [];
      let hidden = new Set();
      const draw = () => {
        renderGraph(plot, result, { start: r.start, end: r.end, step: r.step, hidden });
        renderLegend(legend, result, hidden, (next) => {
          hidden = next;
          draw();
        });
      };
      draw();
      lines.dataset.state = "done";
    } catch (e) {
      if (e.name === "AbortError") return;
      lines.dataset.state = "error";
      replace(lines);
      editor.setError(e.message);
    }
  }

  function showLines(streams) {
    const entries = [];
    for (const s of streams) for (const [ts, line] of s.values) entries.push({ ts, line, labels: s.stream });
    entries.sort((a, b) => cmpNs(b.ts, a.ts));
    // With several streams, the labels they all share say nothing about a line: show the ones
    // that tell the streams apart (all of them are in the expanded view).
    const shared = new Set();
    if (streams.length > 1) {
      for (const [k, v] of Object.entries(streams[0].stream)) {
        if (streams.every((s) => s.stream[k] === v)) shared.add(k);
      }
    }
    lines.dataset.count = String(entries.length);
    if (!entries.length) return replace(lines, h("p", { class: "hint" }, "No lines in this range."));
    replace(lines, h("ol", { class: "log-lines" }, entries.map((e) => lineView(e, shared))));
  }

  function lineView(e, shared) {
    let details = null;
    const li = h("li", { class: "log-line", "data-ts": e.ts },
      h("button", { type: "button", class: "expand", "aria-expanded": "false", onclick: () => {
        if (details) {
          details.remove();
          details = null;
        } else {
          details = detailsView(e);
          li.append(details);
        }
        li.querySelector(".expand").setAttribute("aria-expanded", String(!!details));
      } }, "›"),
      h("time", { class: "ts" }, formatNs(e.ts)),
      h("span", { class: "stream", title: Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(" ") },
        Object.entries(e.labels).filter(([k]) => !shared.has(k)).map(([k, v]) => `${k}=${v}`).join(" ")),
      h("span", { class: "text" }, e.line));
    return li;
  }

  function detailsView(e) {
    const row = (k, v, kind) => h("tr", { class: kind }, h("th", null, k), h("td", null, v));
    const fields = parseFields(e.line);
    return h("div", { class: "line-details" },
      h("table", null, h("tbody", null,
        Object.entries(e.labels).map(([k, v]) => row(k, v, "label")),
        fields.map(([k, v]) => row(k, v, "field")))),
      fields.length ? null : h("p", { class: "hint no-fields" }, "No fields: the line is neither JSON nor logfmt."),
      podMetricsLink(e.labels, lineRange(e.ts)));
  }

  // The page's range for a line's links; a line newer than the range's end (one the live tail
  // brought) moves the same span forward to end at it.
  function lineRange(ts) {
    const r = resolveRange({ range: state.range, end: state.end, step: "" }, autoStep);
    const span = r.error ? 3600000 : r.end - r.start;
    const end = Math.max(r.error ? Date.now() : r.end, Math.ceil(Number(ts.slice(0, -6) || "0") / 1000) * 1000);
    return { start: end - span, end };
  }

  // Live tail: new lines of the query go on top of the list, which keeps at most `limit` of
  // them; drops the server reports are counted in the status.
  let tail = null;
  let dropped = 0;
  let received = 0;
  const tailButton = h("button", { type: "button", class: "tail-toggle", "aria-pressed": "false", onclick: () => (tail ? stopTail() : startTail()) }, "Live");
  const tailStatus = h("span", { class: "tail-status", "data-state": "idle", "data-dropped": "0", role: "status" });

  function setTailState(st, detail) {
    tailStatus.dataset.state = st;
    const on = st === "connecting" || st === "live";
    tailButton.textContent = on ? "Stop" : "Live";
    tailButton.setAttribute("aria-pressed", String(on));
    if (!on) tail = null;
    const parts = { connecting: "connecting…", live: "live", stopped: "stopped", ended: `ended: ${detail}`, error: detail }[st] || "";
    const count = received && st !== "error" ? ` · ${received} new line${received === 1 ? "" : "s"}` : "";
    replace(tailStatus, parts, count, dropped ? h("span", { class: "tail-dropped" }, ` · ${dropped} dropped by the server (reading too slowly)`) : null);
  }

  function startTail() {
    const query = editor.value.trim();
    if (!isLogQuery(query)) return setTailState("error", "live tail needs a log query: a stream selector, optionally with a pipeline");
    if (query !== state.query) {
      editor.value = query;
      // Run the edited query first; its error, if any, is shown and no tail starts.
      return run(true).then(() => lines.dataset.state === "done" && startTail());
    }
    // Continue from the newest line shown when the range ends now, so nothing falls between
    // the query and the tail; otherwise start from now.
    const newest = lines.querySelector(".log-line");
    const startNs = !state.end && newest ? (BigInt(newest.dataset.ts) + 1n).toString() : msToNs(Date.now());
    dropped = 0;
    received = 0;
    tailStatus.dataset.dropped = "0";
    const max = Math.min(parseInt(state.limit, 10) || 1000, MAX_TAIL_LINES);
    tail = openTail({
      query,
      limit: max,
      startNs,
      onState: setTailState,
      onDropped: (n) => {
        dropped += n;
        tailStatus.dataset.dropped = String(dropped);
        setTailState(tailStatus.dataset.state);
      },
      onEntries: (entries) => {
        let list = lines.querySelector(".log-lines");
        if (!list) {
          list = h("ol", { class: "log-lines" });
          replace(lines, list);
        }
        const pinned = new Set(parseMatchers(query.slice(...selectorSpan(query))).filter((m) => m.op === "=").map((m) => m.name));
        prependBounded(list, entries.map((e) => lineView(e, pinned)), max);
        lines.dataset.count = String(list.children.length);
        lines.dataset.state = "done";
        received += entries.length;
        setTailState(tailStatus.dataset.state);
      },
    });
  }

  function stopTail() {
    if (tail) tail.stop();
  }

  let browserLoaded = "";
  async function loadBrowser(r) {
    const key = `${state.range}|${state.end}`;
    if (browserLoaded === key) return markSelected();
    browserLoaded = key;
    const range = { start: msToNs(r.start), end: msToNs(r.end) };
    try {
      const names = await get("/loki/api/v1/labels", range);
      replace(browser, h("h3", null, "Labels"), names.length ? names.map((name) => labelGroup(name, range)) : h("p", { class: "hint" }, "No labels in this range."));
      markSelected();
    } catch (e) {
      replace(browser, h("div", { class: "error" }, e.message));
    }
  }

  function labelGroup(name, range) {
    const values = h("div", { class: "values", hidden: true });
    const group = h("div", { class: "label-group", "data-label": name },
      h("button", { type: "button", class: "label-name", onclick: async () => {
        if (!values.hidden) {
          values.hidden = true;
          return;
        }
        values.hidden = false;
        replace(values, "…");
        try {
          const vs = await get(`/loki/api/v1/label/${encodeURIComponent(name)}/values`, range);
          replace(values, vs.map((v) => h("button", { type: "button", class: "chip", "data-value": v, onclick: () => {
            editor.value = toggleMatcher(editor.value, name, v);
            run(true);
          } }, v)));
          markSelected();
        } catch (e) {
          replace(values, h("span", { class: "error" }, e.message));
        }
      } }, name),
      values);
    return group;
  }

  // Highlights the values the current selector already picks.
  function markSelected() {
    const span = selectorSpan(editor.value);
    const ms = span ? parseMatchers(editor.value.slice(span[0], span[1])) : [];
    for (const chip of browser.querySelectorAll(".chip")) {
      const name = chip.closest(".label-group").dataset.label;
      const v = chip.dataset.value;
      const on = ms.some((m) => m.name === name && ((m.op === "=" && m.value === v) || (m.op === "=~" && m.value.split("|").some((alt) => alt.replace(/\\(.)/g, "$1") === v))));
      chip.classList.toggle("selected", on);
    }
  }

  const picker = createRangePicker(state, { withStep: false, onChange: () => run(true) });
  const limitIn = h("input", { class: "limit-input", value: state.limit, size: "5", "aria-label": "line limit", onchange: (e) => {
    state.limit = e.target.value.trim() || DEFAULT_LIMIT;
    run(true);
  } });
  replace(root, h("div", { class: "logs-page" }, browser,
    h("div", { class: "logs-main" },
      h("div", { class: "panel-head" }, editor.el, h("button", { type: "button", class: "primary", onclick: () => run(true) }, "Run")),
      h("div", { class: "panel-controls" }, picker, h("label", { class: "inline" }, "limit ", limitIn), tailButton, tailStatus),
      volume, stats, lines)));
  queueMicrotask(() => run(false));
  // Leaving the page ends its tail.
  return stopTail;
}
