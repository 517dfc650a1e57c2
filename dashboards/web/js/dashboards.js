// The Dashboards page: the shipped Kubernetes dashboards rendered natively from the same
// Grafana JSON files Grafana loads (`dashboards/grafana/*.json`, embedded and served beside the
// scripts), so the two never drift. It understands what those files use: a 24-column grid of
// time-series panels, Prometheus and Loki targets with `legendFormat`, query variables of the
// form `label_values(metric, label)`, and Grafana's `$__rate_interval`, `$__interval`,
// `$__auto` and `$var` substitutions. URL state: `d`, `var-<name>`, `range_input`, `end_input`.

import { h, replace } from "./dom.js";
import { get, post } from "./api.js";
import { renderGraph, renderLegend } from "./graph.js";
import { createRangePicker, resolveRange } from "./rangepicker.js";
import { autoStep, formatDuration, msToNs } from "./time.js";

// The shipped dashboards, in the order the index lists them.
export const DASHBOARDS = ["cluster-use", "namespace-pods", "node", "logs-volume"];

/// The scrape interval Grafana's `$__rate_interval` assumes (the agent's default).
const SCRAPE_MS = 15000;

const dashboardUrl = (name) => new URL(`../dashboards/${name}.json`, import.meta.url);

async function loadDashboard(name) {
  const resp = await fetch(dashboardUrl(name));
  if (!resp.ok) throw new Error(`dashboard ${name}: ${resp.status} ${resp.statusText}`);
  return resp.json();
}

// Grafana's interval variables for a step, and the dashboard's own variables.
export function substitute(expr, stepMs, vars) {
  const rate = Math.max(stepMs + SCRAPE_MS, 4 * SCRAPE_MS);
  let out = expr
    .replaceAll("$__rate_interval", formatDuration(rate))
    .replaceAll("$__interval", formatDuration(stepMs))
    .replaceAll("$__auto", formatDuration(stepMs));
  // Longest names first, so `$instance` does not eat `$instance_name`.
  for (const [name, value] of Object.entries(vars).sort(([a], [b]) => b.length - a.length)) {
    out = out.replaceAll("${" + name + "}", value).replaceAll("$" + name, value);
  }
  return out;
}

// `{{label}}` in a legend format filled from a series' labels.
export function legendOf(format, metric) {
  if (!format) return null;
  return format.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, l) => metric[l] ?? "");
}

// `label_values(metric, label)` or `label_values(label)` → the values, over the range.
async function variableValues(v, range) {
  const q = (v.query && v.query.query) || v.definition || "";
  const m = /^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(q);
  if (!m) throw new Error(`variable ${v.name}: unsupported query ${q}`);
  const params = new URLSearchParams({ start: String(range.start / 1000), end: String(range.end / 1000) });
  if (m[1]) params.append("match[]", m[1]);
  return get(`/api/v1/label/${encodeURIComponent(m[2])}/values`, params);
}

// One target's matrix, from the Prometheus or the Loki API.
async function runTarget(kind, expr, range) {
  if (kind === "loki") {
    const data = await get("/loki/api/v1/query_range", {
      query: expr, start: msToNs(range.start), end: msToNs(range.end), step: String(range.step / 1000),
    });
    return data.result;
  }
  const data = await post("/api/v1/query_range", {
    query: expr, start: String(range.start / 1000), end: String(range.end / 1000), step: String(range.step / 1000),
  });
  return data.result;
}

function renderPanel(p, vars, range) {
  const kind = p.datasource && p.datasource.type === "loki" ? "loki" : "prometheus";
  const graph = h("div", { class: "dash-graph" }, h("p", { class: "hint" }, "Loading…"));
  const legend = h("div");
  const el = h("section", {
    class: "dash-panel", "data-panel": p.id, "data-kind": kind,
    style: `grid-column: span ${Math.max(1, Math.min(24, (p.gridPos && p.gridPos.w) || 12))}`,
  }, h("h3", { title: p.description || "" }, p.title), graph, legend);
  const stacked = p.fieldConfig && p.fieldConfig.defaults && p.fieldConfig.defaults.custom
    && p.fieldConfig.defaults.custom.stacking && p.fieldConfig.defaults.custom.stacking.mode === "normal";
  (async () => {
    try {
      const parts = await Promise.all((p.targets || []).map(async (t) => {
        const result = await runTarget(kind, substitute(t.expr, range.step, vars), range);
        return result.map((s) => {
          const name = legendOf(t.legendFormat, s.metric || s.stream || {});
          return { metric: name ? { __name__: name } : (s.metric || s.stream || {}), values: s.values };
        });
      }));
      const matrix = parts.flat();
      if (!matrix.length) {
        replace(graph, h("p", { class: "hint no-data" }, "No data in this range."));
        return;
      }
      let hidden = new Set();
      const draw = () => {
        renderGraph(graph, matrix, { start: range.start, end: range.end, step: range.step, stacked, hidden });
        renderLegend(legend, matrix, hidden, (next) => { hidden = next; draw(); });
      };
      draw();
    } catch (e) {
      replace(graph, h("p", { class: "error", role: "alert" }, e.message));
    }
  })();
  return el;
}

function renderIndex(root) {
  const list = h("ul", { class: "dash-index" });
  replace(root, h("div", { class: "status-page", "data-page": "dashboards" }, h("h2", null, "Dashboards"), list,
    h("p", { class: "hint" }, "The same dashboards, as Grafana JSON with datasource provisioning, are in dashboards/grafana/.")));
  for (const name of DASHBOARDS) {
    const item = h("li", null, h("a", { href: `/dashboards?d=${name}` }, name));
    list.append(item);
    loadDashboard(name).then((d) => replace(item, h("a", { href: `/dashboards?d=${name}`, class: "dash-link" }, d.title), h("div", { class: "hint" }, d.description || "")))
      .catch((e) => item.append(h("span", { class: "error" }, ` ${e.message}`)));
  }
}

export function mount(root, params) {
  const name = params.get("d");
  if (!name) return renderIndex(root);
  const state = { range: params.get("range_input") || "1h", end: params.get("end_input") || "", step: "" };
  const vars = {};
  for (const [k, v] of params) if (k.startsWith("var-")) vars[k.slice(4)] = v;
  const body = h("div", { class: "dash-grid" });
  const controls = h("div", { class: "panel-controls" });
  const title = h("h2", null, name);
  replace(root, h("div", { class: "dashboard", "data-dashboard": name }, title, controls, body));
  let dashboard = null;
  const save = () => {
    const p = new URLSearchParams({ d: name, range_input: state.range });
    if (state.end) p.set("end_input", state.end);
    for (const [k, v] of Object.entries(vars)) p.set(`var-${k}`, v);
    history.replaceState(null, "", `/dashboards?${p}`);
  };
  const draw = async () => {
    const range = resolveRange(state, autoStep);
    if (range.error) {
      replace(body, h("p", { class: "error" }, range.error));
      return;
    }
    // Query variables first: each gets the URL's value or its first value.
    const selects = [];
    for (const v of (dashboard.templating && dashboard.templating.list) || []) {
      if (v.type !== "query") continue;
      let values = [];
      try {
        values = await variableValues(v, range);
      } catch (e) {
        selects.push(h("span", { class: "error" }, e.message));
        continue;
      }
      if (!(v.name in vars) || (values.length && !values.includes(vars[v.name]))) vars[v.name] = values[0] ?? "";
      const sel = h("select", { class: "dash-var", "data-var": v.name, onchange: (e) => { vars[v.name] = e.target.value; save(); draw(); } },
        values.map((x) => h("option", { value: x, selected: x === vars[v.name] }, x)));
      selects.push(h("label", { class: "inline" }, `${v.label || v.name} `, values.length ? sel : h("span", { class: "hint" }, "(none)")));
    }
    replace(controls, createRangePicker(state, { withStep: false, onChange: () => { save(); draw(); } }), selects,
      h("span", { class: "hint" }, `step ${formatDuration(range.step)}`));
    replace(body, (dashboard.panels || []).slice().sort((a, b) => (a.gridPos.y - b.gridPos.y) || (a.gridPos.x - b.gridPos.x)).map((p) => renderPanel(p, vars, range)));
  };
  return loadDashboard(name).then((d) => {
    dashboard = d;
    title.textContent = d.title;
    document.title = `Vigil · ${d.title}`;
    save();
    return draw();
  }).catch((e) => replace(body, h("p", { class: "error", role: "alert" }, e.message)));
}
