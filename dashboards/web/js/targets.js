// The Targets page: the scrape targets from /api/v1/targets grouped by scrape pool, each with
// its health, labels, last scrape, duration and last error, as Prometheus's targets page. The
// server scrapes nothing itself: Vigil's agents report their targets to it, and
// /api/v1/targets lists them complete. A scraper that does not report (a Prometheus in agent
// mode, or a Vigil agent whose reports are off) is still seen through the series every scrape
// writes: `up` gives the health, `timestamp(up)` the last scrape and
// `scrape_duration_seconds` the duration, grouped by `job`; those rows have no error text.

import { h, replace } from "./dom.js";
import { get } from "./api.js";
import { badge, ago, seconds, labelChips, loadInto, section } from "./table.js";

function targetRow(t) {
  // A reported target has no URL, only its instance label.
  const endpoint = t.scrapeUrl
    ? h("a", { href: t.scrapeUrl, class: "scrape-url" }, t.scrapeUrl)
    : h("span", { class: "scrape-url" }, t.labels.instance || "");
  return h("tr", { class: `target target-${t.health}`, "data-source": t.source || "api" },
    h("td", null, endpoint),
    h("td", null, badge(t.health)),
    h("td", null, labelChips(t.labels)),
    h("td", { class: "last-scrape" }, ago(t.lastScrape)),
    h("td", { class: "scrape-duration" }, seconds(t.lastScrapeDuration)),
    h("td", { class: t.lastError ? "error" : "" }, t.lastError || ""));
}

// A series' labels without its name, as a key that `timestamp()` and the other report series
// share with `up` (both drop or lack `__name__`).
function labelKey(metric) {
  return JSON.stringify(Object.keys(metric).filter((k) => k !== "__name__").sort().map((k) => [k, metric[k]]));
}

// Targets in /api/v1/targets' shape, made from the agents' report series.
export function reportedTargets(up, stamps, durations) {
  const at = new Map(stamps.map((s) => [labelKey(s.metric), parseFloat(s.value[1])]));
  const took = new Map(durations.map((s) => [labelKey(s.metric), parseFloat(s.value[1])]));
  return up.map((s) => {
    const key = labelKey(s.metric);
    const labels = Object.fromEntries(JSON.parse(key));
    const t = at.get(key);
    return {
      source: "series",
      scrapePool: labels.job || "",
      scrapeUrl: "",
      labels,
      health: parseFloat(s.value[1]) === 1 ? "up" : "down",
      lastScrape: Number.isFinite(t) ? new Date(t * 1000).toISOString() : "",
      lastScrapeDuration: took.get(key),
      lastError: "",
    };
  });
}

// The API's targets, then the reported ones it does not already list (by job and instance).
export function mergeTargets(active, reported) {
  const id = (t) => `${t.labels.job}\u0000${t.labels.instance}`;
  const known = new Set(active.map(id));
  return active.concat(reported.filter((t) => !known.has(id(t))));
}

async function load() {
  const instant = (query) => get("/api/v1/query", { query }).then((d) => d.result || []);
  const [api, up, stamps, durations] = await Promise.all([
    get("/api/v1/targets", { state: "active" }),
    instant("up"),
    instant("timestamp(up)"),
    instant("scrape_duration_seconds"),
  ]);
  return { activeTargets: mergeTargets(api.activeTargets || [], reportedTargets(up, stamps, durations)) };
}

export function draw(data) {
  const pools = new Map();
  for (const t of data.activeTargets || []) {
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool).push(t);
  }
  if (!pools.size) return h("p", { class: "hint" }, "No scrape targets. Agents report theirs once they scrape; the server's own targets come from the config file's scrape_configs.");
  const reported = (data.activeTargets || []).some((t) => t.source === "series");
  return [
    reported ? h("p", { class: "hint" }, "Targets listed by instance rather than URL come from the up and scrape_duration_seconds series of a scraper that does not report its targets; its own /api/v1/targets has their last error.") : null,
    [...pools.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([pool, targets]) => {
      const up = targets.filter((t) => t.health === "up").length;
      return section(h("span", { class: "group-title" }, pool), h("span", { class: "hint" }, ` (${up}/${targets.length} up)`),
        h("table", { class: "status-table" },
          h("thead", null, h("tr", null, ["Endpoint", "State", "Labels", "Last scrape", "Duration", "Error"].map((x) => h("th", null, x)))),
          h("tbody", null, targets.map(targetRow))));
    }),
  ];
}

export function mount(root) {
  const body = h("div", { class: "status-body" }, h("p", { class: "hint" }, "Loading…"));
  replace(root, h("div", { class: "status-page", "data-page": "targets" }, h("h2", null, "Targets"), body));
  return loadInto(body, load, draw);
}
