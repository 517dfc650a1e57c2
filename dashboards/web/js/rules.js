// The Rules page: every rule group from /api/v1/rules with each rule's health, last
// evaluation, duration and last error, as Prometheus's rules page shows them.

import { h, replace } from "./dom.js";
import { get } from "./api.js";
import { badge, ago, seconds, labelChips, loadInto, section } from "./table.js";

function ruleRow(r) {
  const expr = h("a", { class: "expr", href: `/query?${new URLSearchParams({ "g0.expr": r.query, "g0.tab": "1" })}` }, r.query);
  const kind = r.type === "alerting" ? `alert: ${r.name}` : `record: ${r.name}`;
  return h("tr", { class: `rule rule-${r.health}`, dataset: { rule: r.name } },
    h("td", null,
      h("div", { class: "rule-name" }, kind),
      h("div", null, expr),
      r.type === "alerting" && r.duration ? h("div", { class: "hint" }, `for: ${r.duration}s`) : null,
      Object.keys(r.labels || {}).length ? h("div", null, labelChips(r.labels)) : null,
      r.lastError ? h("div", { class: "error" }, r.lastError) : null),
    h("td", null, badge(r.health)),
    h("td", null, r.type === "alerting" ? badge(r.state) : ""),
    h("td", null, ago(r.lastEvaluation)),
    h("td", null, seconds(r.evaluationTime)));
}

export function draw(data) {
  const groups = data.groups || [];
  if (!groups.length) return h("p", { class: "hint" }, "No rule groups are loaded. Rule files are given with --rules.file or the config file's rule_files.");
  return groups.map((g) => section(
    h("span", { class: "group-title" }, g.name),
    h("span", { class: "hint" }, ` ${g.file} · every ${g.interval}s · last ${ago(g.lastEvaluation)} · took ${seconds(g.evaluationTime)}`),
    h("table", { class: "status-table" },
      h("thead", null, h("tr", null, ["Rule", "Health", "State", "Last evaluation", "Duration"].map((t) => h("th", null, t)))),
      h("tbody", null, (g.rules || []).map(ruleRow)))));
}

export function mount(root) {
  const body = h("div", { class: "status-body" }, h("p", { class: "hint" }, "Loading…"));
  replace(root, h("div", { class: "status-page", "data-page": "rules" }, h("h2", null, "Rules"), body));
  return loadInto(body, () => get("/api/v1/rules"), draw);
}
