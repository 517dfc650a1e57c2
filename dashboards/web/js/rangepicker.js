// The time range controls both pages use: a range ("1h") with shorter/longer buttons, an end
// time (empty means now) with earlier/later buttons, and, where asked for, a step (empty means
// automatic). The state is plain strings so it round-trips through the URL unchanged.

import { h } from "./dom.js";
import { parseDuration, formatDuration, parseTime, formatTime } from "./time.js";

const RANGES = ["1m", "5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d", "2d", "1w", "2w", "4w", "8w"];

// `state` is `{range, end, step}` as strings; `onChange()` runs after any edit, with `state`
// already updated. The element's `sync()` rereads `state` into the inputs.
export function createRangePicker(state, { withStep = true, onChange }) {
  const rangeIn = h("input", { class: "range-input", value: state.range, size: "5", "aria-label": "range", title: "range, e.g. 1h or 30m" });
  const endIn = h("input", { class: "end-input", value: state.end, size: "18", placeholder: "end: now", "aria-label": "end time (UTC)", title: "end time, UTC: YYYY-MM-DD HH:MM:SS" });
  const stepIn = withStep ? h("input", { class: "step-input", value: state.step, size: "5", placeholder: "auto", "aria-label": "step", title: "resolution, e.g. 15s" }) : null;

  const rangeMs = () => parseDuration(rangeIn.value) || 3600000;
  const commit = () => {
    state.range = rangeIn.value.trim();
    state.end = endIn.value.trim();
    if (stepIn) state.step = stepIn.value.trim();
    onChange();
  };
  const shiftRange = (dir) => {
    const cur = rangeMs();
    const ms = RANGES.map(parseDuration);
    const next = dir > 0 ? ms.find((r) => r > cur) : ms.slice().reverse().find((r) => r < cur);
    if (next) rangeIn.value = formatDuration(next);
    commit();
  };
  const shiftEnd = (dir) => {
    const end = parseTime(endIn.value) ?? Date.now();
    const next = end + (dir * rangeMs()) / 2;
    endIn.value = dir > 0 && next >= Date.now() ? "" : formatTime(next);
    commit();
  };
  for (const input of [rangeIn, endIn, stepIn]) {
    if (!input) continue;
    input.addEventListener("change", commit);
    input.addEventListener("keydown", (e) => e.key === "Enter" && commit());
  }
  const btn = (label, title, f) => h("button", { type: "button", class: "small", title, onclick: f }, label);
  const el = h("div", { class: "range-picker" },
    btn("−", "shorter range", () => shiftRange(-1)), rangeIn, btn("+", "longer range", () => shiftRange(1)),
    btn("◀", "earlier", () => shiftEnd(-1)), endIn, btn("▶", "later", () => shiftEnd(1)),
    stepIn ? [h("label", { class: "inline" }, "step ", stepIn)] : null);
  // After the state changed elsewhere (a drag-zoom on the graph), the inputs show it again;
  // otherwise the next edit here would commit the old range over the new one.
  el.sync = () => {
    rangeIn.value = state.range;
    endIn.value = state.end;
    if (stepIn) stepIn.value = state.step;
  };
  return el;
}

// The `{start, end, step}` in milliseconds a state asks for at this moment, or an error text.
export function resolveRange(state, autoStep) {
  const range = parseDuration(state.range || "1h");
  if (!range) return { error: `bad range ${JSON.stringify(state.range)}: use a duration such as 1h or 30m` };
  let end = Date.now();
  if (state.end) {
    end = parseTime(state.end);
    if (end === null) return { error: `bad end time ${JSON.stringify(state.end)}: use YYYY-MM-DD HH:MM:SS (UTC)` };
  }
  let step = autoStep(range);
  if (state.step) {
    step = parseDuration(state.step);
    if (!step) return { error: `bad step ${JSON.stringify(state.step)}: use a duration such as 15s` };
  }
  // "Now" is aligned on the step so that refreshes draw the same points; a written end time
  // is kept as written, so a shared link shows exactly the range it names.
  if (!state.end) end = Math.floor(end / step) * step;
  return { start: end - range, end, step };
}
