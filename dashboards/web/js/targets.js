// The Targets page: the scrape targets from /api/v1/targets grouped by scrape pool, each with
// its health, labels, last scrape, duration and last error, as Prometheus's targets page.

import { h, replace } from "./dom.js";
import { get } from "./api.js";
import { badge, ago, seconds, labelChips, loadInto, section } from "./table.js";

function targetRow(t) {
  return h("tr", { class: `target target-${t.health}` },
    h("td", null, h("a", { href: t.scrapeUrl, class: "scrape-url" }, t.scrapeUrl)),
    h("td", null, badge(t.health)),
    h("td", null, labelChips(t.labels)),
    h("td", null, ago(t.lastScrape)),
    h("td", null, seconds(t.lastScrapeDuration)),
    h("td", { class: t.lastError ? "error" : "" }, t.lastError || ""));
}

export function draw(data) {
  const pools = new Map();
  for (const t of data.activeTargets || []) {
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool).push(t);
  }
  if (!pools.size) return h("p", { class: "hint" }, "No scrape targets. Agents report theirs once they scrape; the server's own targets come from the config file's scrape_configs.");
  return [...pools.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([pool, targets]) => {
    const up = targets.filter((t) => t.health === "up").length;
    return section(h("span", { class: "group-title" }, pool), h("span", { class: "hint" }, ` (${up}/${targets.length} up)`),
      h("table", { class: "status-table" },
        h("thead", null, h("tr", null, ["Endpoint", "State", "Labels", "Last scrape", "Duration", "Error"].map((x) => h("th", null, x)))),
        h("tbody", null, targets.map(targetRow))));
  });
}

export function mount(root) {
  const body = h("div", { class: "status-body" }, h("p", { class: "hint" }, "Loading…"));
  replace(root, h("div", { class: "status-page", "data-page": "targets" }, h("h2", null, "Targets"), body));
  return loadInto(body, () => get("/api/v1/targets", { state: "active" }), draw);
}
