// The app shell: picks the page from the URL path, keeps the navigation current, and follows
// in-app links without reloading (history API), so back and forward move between views. A
// page's `mount` may return a function that ends what it started (the Logs page's live tail);
// it runs before the next page mounts.

import { h, replace } from "./dom.js";
import * as query from "./query.js";
import * as logs from "./logs.js";
import * as alerts from "./alerts.js";
import * as rules from "./rules.js";
import * as targets from "./targets.js";
import * as dashboards from "./dashboards.js";

const PAGES = { query, graph: query, logs, alerts, rules, targets, dashboards };
const TITLES = { query: "Query", logs: "Logs", alerts: "Alerts", rules: "Rules", targets: "Targets", dashboards: "Dashboards" };

function pageName(path) {
  const name = path.replace(/^\/+|\/+$/g, "") || "query";
  return name;
}

let unmount = null;

function render() {
  if (unmount) unmount();
  unmount = null;
  const root = document.getElementById("page");
  const name = pageName(location.pathname);
  const active = name === "graph" ? "query" : name;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === active);
    if (a.dataset.page === active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = PAGES[name];
  if (page) {
    document.title = `Vigil · ${TITLES[active]}`;
    const end = page.mount(root, new URLSearchParams(location.search));
    if (typeof end === "function") unmount = end;
    return;
  }
  document.title = "Vigil · Not found";
  replace(root, h("section", { class: "planned", "data-page": name }, h("h2", null, "Not found"), h("p", null, `There is no page at ${location.pathname}.`)));
}

// Same-origin links to app pages are followed in place; everything else is left to the browser.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.origin !== location.origin) return;
  const name = pageName(a.pathname);
  if (!PAGES[name]) return;
  e.preventDefault();
  history.pushState(null, "", a.pathname + a.search);
  render();
});
window.addEventListener("popstate", render);
render();
