// The app shell: picks the page from the URL path, keeps the navigation current, and follows
// in-app links without reloading (history API), so back and forward move between views.

import { h, replace } from "./dom.js";
import * as query from "./query.js";
import * as logs from "./logs.js";

// Pages that are not built yet say so plainly, and say what they will hold.
const PLANNED = {
  alerts: ["Alerts", "Not built yet. This page will list firing and pending alerts grouped as the router groups them, with their annotations, and the silences: list, create from an alert, expire."],
  rules: ["Rules", "Not built yet. This page will list the rule groups with each rule's health, last evaluation, duration and last error, as Prometheus's rules page does."],
  targets: ["Targets", "Not built yet. This page will list the scrape targets with their health, last scrape, duration and last error."],
  dashboards: ["Dashboards", "Not built yet. This page will render the shipped Kubernetes dashboards: cluster USE, namespace and pod resources, nodes, and log volume by namespace."],
};

const PAGES = { query, graph: query, logs };

function pageName(path) {
  const name = path.replace(/^\/+|\/+$/g, "") || "query";
  return name;
}

function render() {
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
    document.title = `Vigil · ${active === "query" ? "Query" : "Logs"}`;
    page.mount(root, new URLSearchParams(location.search));
    return;
  }
  const [title, text] = PLANNED[name] || ["Not found", `There is no page at ${location.pathname}.`];
  document.title = `Vigil · ${title}`;
  replace(root, h("section", { class: "planned", "data-page": name }, h("h2", null, title), h("p", null, text)));
}

// Same-origin links to app pages are followed in place; everything else is left to the browser.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.origin !== location.origin) return;
  const name = pageName(a.pathname);
  if (!PAGES[name] && !PLANNED[name]) return;
  e.preventDefault();
  history.pushState(null, "", a.pathname + a.search);
  render();
});
window.addEventListener("popstate", render);
render();
