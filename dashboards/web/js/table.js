// Pieces the status pages share: health badges, relative ages, collapsible sections, and a
// loader that shows the API's error in place of the page body.

import { h, replace } from "./dom.js";
import { formatDuration } from "./time.js";

// A coloured badge for a health or state word ("up", "ok", "firing", "active", ...).
export function badge(word) {
  const w = String(word || "unknown").toLowerCase();
  return h("span", { class: `badge badge-${w}` }, w);
}

// "12s ago" for an RFC 3339 time; "never" for Go's zero time or nothing.
export function ago(rfc3339, now = Date.now()) {
  const t = Date.parse(rfc3339 || "");
  if (!Number.isFinite(t) || t <= 0) return "never";
  const d = now - t;
  return d < 0 ? `in ${formatDuration(-d)}` : `${formatDuration(d)} ago`;
}

// Seconds as the shortest readable duration: "3.2ms", "1.25s".
export function seconds(s) {
  if (!Number.isFinite(s)) return "";
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)}µs`;
  if (s < 1) return `${(s * 1e3).toFixed(1)}ms`;
  return `${s.toFixed(2)}s`;
}

// `{a="b", c="d"}` chips for a label set.
export function labelChips(labels) {
  return h("span", { class: "label-chips" },
    Object.entries(labels || {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => h("span", { class: "label-chip" }, `${k}="${v}"`)));
}

// Runs `load()` and renders its result with `draw(data)` into `body`, showing the error text
// of a failure instead; returns the promise so callers can chain a refresh.
export async function loadInto(body, load, draw) {
  try {
    const data = await load();
    replace(body, draw(data));
  } catch (e) {
    replace(body, h("p", { class: "error", role: "alert" }, e.message));
  }
}

// A section whose header toggles its body; `open` by default.
export function section(title, extra, content, open = true) {
  const body = h("div", { class: "section-body" }, content);
  const head = h("button", { class: "section-head", "aria-expanded": String(open) }, title, extra);
  if (!open) body.hidden = true;
  head.addEventListener("click", () => {
    body.hidden = !body.hidden;
    head.setAttribute("aria-expanded", String(!body.hidden));
  });
  return h("section", { class: "group" }, head, body);
}
