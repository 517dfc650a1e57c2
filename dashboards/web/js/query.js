// The Query page: one or more PromQL panels, each with an editor, a graph (range query) or a
// table (instant query), and its state in the URL in Prometheus's own parameter names
// (`g0.expr`, `g0.tab`, `g0.range_input`, `g0.end_input`, `g0.step_input`, `g0.stacked`), so
// that a link reproduces the view and Prometheus's links open here.

import { h, replace } from "./dom.js";
import { post } from "./api.js";
import { createEditor } from "./editor.js";
import { language } from "./promql.js";
import { renderGraph, renderLegend, formatLabels } from "./graph.js";
import { createRangePicker, resolveRange } from "./rangepicker.js";
import { autoStep, formatTime, formatDuration } from "./time.js";
import { podLogsLink } from "./podlinks.js";

// Panels read from URL parameters; at least one, empty.
export function panelsFromParams(params) {
  const panels = [];
  for (let i = 0; params.has(`g${i}.expr`) || params.has(`g${i}.range_input`) || params.has(`g${i}.tab`); i++) {
    const g = (k) => params.get(`g${i}.${k}`);
    const tab = g("tab");
    panels.push({
      expr: g("expr") || "",
      tab: tab === "1" || tab === "table" ? "table" : "graph",
      range: g("range_input") || "1h",
      end: g("end_input") || g("moment_input") || "",
      step: g("step_input") || "",
      stacked: g("stacked") === "1" || g("display_mode") === "stacked",
    });
  }
  return panels.length ? panels : [newPanel()];
}

export function panelsToParams(panels) {
  const p = new URLSearchParams();
  panels.forEach((s, i) => {
    p.set(`g${i}.expr`, s.expr);
    p.set(`g${i}.tab`, s.tab === "table" ? "1" : "0");
    p.set(`g${i}.stacked`, s.stacked ? "1" : "0");
    p.set(`g${i}.range_input`, s.range);
    if (s.end) p.set(`g${i}.end_input`, s.end);
    if (s.step) p.set(`g${i}.step_input`, s.step);
  });
  return p;
}

const newPanel = () => ({ expr: "", tab: "graph", range: "1h", end: "", step: "", stacked: false });

export function mount(root, params) {
  const panels = panelsFromParams(params);
  const list = h("div", { class: "panels" });
  const save = (push) => {
    const url = `${location.pathname}?${panelsToParams(panels)}`;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  };
  const renderAll = () => {
    replace(list, panels.map((state, i) => panelView(state, {
      save,
      remove: panels.length > 1 ? () => {
        panels.splice(i, 1);
        save(true);
        renderAll();
      } : null,
    })));
  };
  renderAll();
  replace(root, h("div", { class: "query-page" }, list,
    h("button", { type: "button", class: "add-panel", onclick: () => {
      panels.push(newPanel());
      save(true);
      renderAll();
    } }, "Add query")));
  save(false);
}

function panelView(state, { save, remove }) {
  const result = h("div", { class: "result", "data-state": "idle" });
  const legend = h("div", { class: "legend-box" });
  const stats = h("div", { class: "stats" });
  let hidden = new Set();
  let controller = null;

  const editor = createEditor({
    language,
    value: state.expr,
    placeholder: "Expression (press Shift+Enter for newlines)",
    onSubmit: () => run(true),
  });

  async function run(push) {
    state.expr = editor.value.trim();
    save(push);
    if (controller) controller.abort();
    editor.setError(null);
    replace(legend);
    replace(stats);
    if (!state.expr) {
      result.dataset.state = "idle";
      return replace(result, h("p", { class: "hint" }, "Enter an expression and press Enter."));
    }
    const r = resolveRange(state, autoStep);
    if (r.error) return fail(r.error, false);
    controller = new AbortController();
    result.dataset.state = "loading";
    const began = performance.now();
    try {
      if (state.tab === "graph") {
        const data = await post("/api/v1/query_range", {
          query: state.expr, start: r.start / 1000, end: r.end / 1000, step: r.step / 1000,
        }, controller.signal);
        showGraph(data, r);
      } else {
        const data = await post("/api/v1/query", { query: state.expr, time: r.end / 1000 }, controller.signal);
        showTable(data, r);
      }
      // For the render-time measurement: the moment the result is on screen (next frame).
      requestAnimationFrame(() => performance.mark("vigil:result-painted"));
      const n = dataCount(result);
      replace(stats, `Load time: ${Math.round(performance.now() - began)}ms · Resolution: ${formatDuration(r.step)} · Result series: ${n}`);
      result.dataset.state = "done";
    } catch (e) {
      if (e.name !== "AbortError") fail(e.message, true);
    }
  }

  function fail(message, fromApi) {
    result.dataset.state = "error";
    replace(result);
    if (fromApi) editor.setError(message);
    else replace(result, h("div", { class: "error" }, message));
  }

  function showGraph(data, r) {
    if (data.resultType !== "matrix") {
      return replace(result, h("p", { class: "hint" }, `The result is a ${data.resultType}; the table shows it.`));
    }
    const draw = () => {
      renderGraph(result, data.result, {
        start: r.start, end: r.end, step: r.step, stacked: state.stacked, hidden,
        onZoom: (from, to) => {
          state.end = formatTime(to);
          state.range = formatDuration(Math.max(to - from, 1000));
          picker.sync();
          run(true);
        },
      });
      renderLegend(legend, data.result, hidden, (next) => {
        hidden = next;
        draw();
      }, (metric) => podLogsLink(metric, r));
    };
    hidden = new Set();
    if (!data.result.length) {
      result.dataset.count = "0";
      return replace(result, h("p", { class: "hint" }, "Empty query result"));
    }
    draw();
    result.dataset.count = String(data.result.length);
  }

  function showTable(data, r) {
    const rows = [];
    if (data.resultType === "vector") {
      for (const s of data.result) rows.push([s.metric, s.value[1]]);
    } else if (data.resultType === "matrix") {
      for (const s of data.result) rows.push([s.metric, s.values.map(([t, v]) => `${v} @${t}`).join("\n")]);
    } else {
      rows.push([null, data.result[1]]);
    }
    result.dataset.count = String(rows.length);
    if (!rows.length) return replace(result, h("p", { class: "hint" }, "Empty query result"));
    replace(result, h("table", { class: "result-table" }, h("tbody", null, rows.map(([metric, value]) => h("tr", null,
      h("td", { class: "labels" }, metric ? formatLabels(metric) : data.resultType, metric ? podLogsLink(metric, r) : null),
      h("td", { class: "value" }, value))))));
  }

  const tabs = ["graph", "table"].map((t) => h("button", {
    type: "button",
    class: state.tab === t ? "tab active" : "tab",
    onclick: () => {
      state.tab = t;
      tabs.forEach((b, i) => b.classList.toggle("active", ["graph", "table"][i] === t));
      modeBox.hidden = t !== "graph";
      run(true);
    },
  }, t === "graph" ? "Graph" : "Table"));
  const modeBox = h("label", { class: "inline", hidden: state.tab !== "graph" },
    h("input", { type: "checkbox", class: "stacked", checked: state.stacked, onchange: (e) => {
      state.stacked = e.target.checked;
      run(true);
    } }), " stacked");
  const picker = createRangePicker(state, { onChange: () => run(true) });

  const section = h("section", { class: "panel" },
    h("div", { class: "panel-head" }, editor.el,
      h("button", { type: "button", class: "primary", onclick: () => run(true) }, "Execute"),
      remove ? h("button", { type: "button", class: "small", title: "remove this query", onclick: remove }, "×") : null),
    h("div", { class: "panel-controls" }, h("div", { class: "tabs" }, tabs), picker, modeBox),
    stats, result, legend);
  // Run once the panel is in the document, so the graph knows its width.
  queueMicrotask(() => run(false));
  return section;
}

function dataCount(el) {
  return parseInt(el.dataset.count || "0", 10);
}
