// Live tail for the Logs page: a websocket to Loki's `/loki/api/v1/tail`, whose frames
// (`{"streams":[…],"dropped_entries":[…]}`) are turned into entries newest first, and the
// bounded prepending of those entries to the page's list of lines.

import { msToNs } from "./time.js";

// The tail endpoint for `query` on this page's server. `startNs` (a decimal string) is where
// the server's backfill begins, `limit` bounds that backfill, as Loki reads both.
export function tailUrl(loc, query, limit, startNs) {
  const scheme = loc.protocol === "https:" ? "wss" : "ws";
  const p = new URLSearchParams({ query, limit: String(limit), start: startNs });
  return `${scheme}://${loc.host}/loki/api/v1/tail?${p}`;
}

// The entries of one frame, newest first, and how many entries the server dropped for this
// reader since the previous frame. A frame that is not a tail response is an error.
export function parseFrame(text) {
  const frame = JSON.parse(text);
  if (!frame || !Array.isArray(frame.streams)) throw new Error("not a tail response: no streams");
  const entries = [];
  for (const s of frame.streams) {
    for (const [ts, line] of s.values || []) entries.push({ ts, line, labels: s.stream || {} });
  }
  entries.sort((a, b) => cmpNs(b.ts, a.ts));
  return { entries, dropped: Array.isArray(frame.dropped_entries) ? frame.dropped_entries.length : 0 };
}

// Nanosecond timestamps as decimal strings, compared without losing precision.
export const cmpNs = (a, b) => (a.length - b.length) || (a < b ? -1 : a > b ? 1 : 0);

// Puts `items` (DOM nodes, newest first) at the top of `list` and removes the oldest past
// `max`, so a long tail keeps the page's size bounded.
export function prependBounded(list, items, max) {
  const frag = document.createDocumentFragment();
  frag.append(...items);
  list.prepend(frag);
  while (list.children.length > max) list.lastElementChild.remove();
}

// Opens a tail of `query`. Callbacks: `onEntries(entries)` per frame with entries,
// `onDropped(n)` when a frame reports drops, `onState(state, detail)` with "connecting",
// "live", "ended" (detail: the close reason) or "error". Returns `stop()`.
export function openTail({ query, limit, startNs, onEntries, onDropped, onState }) {
  let opened = false;
  let stopped = false;
  const ws = new WebSocket(tailUrl(location, query, limit, startNs || msToNs(Date.now())));
  onState("connecting");
  ws.onopen = () => {
    opened = true;
    onState("live");
  };
  ws.onmessage = (ev) => {
    let frame;
    try {
      frame = parseFrame(ev.data);
    } catch (e) {
      stopped = true;
      ws.close(1000);
      return onState("error", `unreadable tail frame: ${e.message}`);
    }
    if (frame.dropped) onDropped(frame.dropped);
    if (frame.entries.length) onEntries(frame.entries);
  };
  ws.onclose = (ev) => {
    if (stopped) return;
    stopped = true;
    if (!opened) {
      // The server answers a bad query or a tail over its limit with an HTTP error before the
      // upgrade, which a browser's WebSocket does not expose; say what is known.
      return onState("error", `the server refused the live tail (code ${ev.code}); it allows a few tails at once and only log queries`);
    }
    onState("ended", ev.reason ? `${ev.reason} (code ${ev.code})` : `closed (code ${ev.code})`);
  };
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      ws.close(1000);
      onState("stopped");
    },
  };
}
