// The time-series graph: an SVG of a range query's matrix, as lines or stacked areas, with
// time and value axes, a hover line with every visible series' value at that step, and zoom
// by dragging across the plot. Also the legend and the label-set formatting both share.

import { h, svg, replace } from "./dom.js";
import { timeTicks, tickLabel, formatTime } from "./time.js";

const HEIGHT = 320;
const PAD = { top: 10, right: 16, bottom: 26, left: 64 };
const MAX_TOOLTIP_ROWS = 12;

export const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
  "#ea580c", "#4f46e5", "#059669", "#9333ea", "#b45309", "#0284c7", "#e11d48", "#4d7c0f",
];

export const colorOf = (i) => PALETTE[i % PALETTE.length];

// `name{a="1", b="2"}`, as Prometheus prints a series.
export function formatLabels(metric) {
  const name = metric.__name__ || "";
  const rest = Object.keys(metric).filter((k) => k !== "__name__").sort();
  if (!rest.length) return name || "{}";
  return `${name}{${rest.map((k) => `${k}="${metric[k]}"`).join(", ")}}`;
}

// A value as a short axis or tooltip label: SI prefixes for large and small magnitudes, with
// `digits` significant digits at most.
export function formatValue(v, digits = 4) {
  if (!Number.isFinite(v)) return String(v);
  // Rounded first, so that 0.99999999 picks the unit of 1 and reads "1", not "1000m".
  v = parseFloat(v.toPrecision(digits));
  const a = Math.abs(v);
  if (a === 0) return "0";
  const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  const trim = (x) => String(parseFloat(x.toPrecision(digits)));
  for (const [size, u] of units) if (a >= size) return trim(v / size) + u;
  if (a >= 1) return trim(v);
  for (const [size, u] of [[1e-3, "m"], [1e-6, "µ"], [1e-9, "n"]]) if (a >= size) return trim(v / size) + u;
  return v.toExponential(Math.max(digits - 2, 2));
}

// Labels for axis ticks: as short as they can be while every tick reads differently (ticks
// 0.05M apart around 209.8M need five digits, not four).
export function axisLabels(ticks) {
  for (let digits = 4; digits < 12; digits++) {
    const labels = ticks.map((v) => formatValue(v, digits));
    if (new Set(labels).size === labels.length) return labels;
  }
  return ticks.map((v) => formatValue(v, 12));
}

// Round tick values covering [lo, hi], about `n` of them. A span too narrow for the values'
// precision is widened as a flat line's is: a ratio that reads 0.1 at one step and
// 0.09999999999999999 at the next would otherwise give a step below the values' last digit,
// which adding to them never moves past `lo`.
export function niceTicks(lo, hi, n) {
  const scale = Math.max(Math.abs(lo), Math.abs(hi));
  if (hi - lo <= scale * 1e-9) {
    const d = scale || 1;
    lo -= d / 2;
    hi += d / 2;
  }
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const first = Math.floor(lo / step) * step;
  const ticks = [];
  for (let k = 0; first + k * step <= hi + step * 0.5; k++) ticks.push(parseFloat((first + k * step).toPrecision(12)));
  return ticks;
}

// Series on the step grid: `{metric, points: Map(t_ms → value)}`.
function onGrid(matrix) {
  return matrix.map((s) => {
    const points = new Map();
    for (const [t, v] of s.values || []) points.set(Math.round(t * 1000), parseFloat(v));
    return { metric: s.metric, points };
  });
}

// Draws `matrix` (a query_range result) into `container`. Options: start, end, step (ms),
// stacked, hidden (Set of series indexes), onZoom(startMs, endMs).
export function renderGraph(container, matrix, { start, end, step, stacked = false, hidden = new Set(), onZoom }) {
  const width = Math.max(container.clientWidth || 0, 400);
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const series = onGrid(matrix);
  const grid = [];
  for (let t = start; t <= end; t += step) grid.push(t);

  // Stacking adds each visible series onto those before it; a missing point counts as zero in
  // the sum but stays a gap in its own series, as Prometheus's graph does.
  const lows = [];
  const highs = [];
  const base = new Map();
  series.forEach((s, i) => {
    const lo = new Map();
    const hi = new Map();
    if (!hidden.has(i)) {
      for (const t of grid) {
        const v = s.points.get(t);
        if (v === undefined || !Number.isFinite(v)) continue;
        const b = stacked ? base.get(t) || 0 : 0;
        lo.set(t, b);
        hi.set(t, b + v);
        if (stacked) base.set(t, b + v);
      }
    }
    lows.push(lo);
    highs.push(hi);
  });

  let yMin = Infinity;
  let yMax = -Infinity;
  highs.forEach((hi, i) => {
    for (const [t, v] of hi) {
      yMin = Math.min(yMin, v, stacked ? lows[i].get(t) : v);
      yMax = Math.max(yMax, v);
    }
  });
  if (yMin === Infinity) {
    yMin = 0;
    yMax = 1;
  }
  if (stacked) yMin = Math.min(yMin, 0);
  const yTicks = niceTicks(yMin, yMax, 5);
  const y0 = Math.min(yTicks[0], yMin);
  const y1 = Math.max(yTicks[yTicks.length - 1], yMax);
  const x = (t) => PAD.left + ((t - start) / Math.max(end - start, 1)) * plotW;
  const y = (v) => PAD.top + plotH - ((v - y0) / (y1 - y0 || 1)) * plotH;

  const axes = [];
  const shown = yTicks.filter((v) => v >= y0 && v <= y1);
  axisLabels(shown).forEach((label, i) => {
    const v = shown[i];
    axes.push(svg("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
    axes.push(svg("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, label));
  });
  const { step: tStep, ticks } = timeTicks(start, end, Math.max(2, Math.floor(plotW / 90)));
  for (const t of ticks) {
    axes.push(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: PAD.top, y2: PAD.top + plotH }));
    axes.push(svg("text", { class: "tick", x: x(t), y: HEIGHT - 8, "text-anchor": "middle" }, tickLabel(t, tStep)));
  }

  const paths = series.map((s, i) => {
    if (hidden.has(i)) return null;
    const color = colorOf(i);
    const runs = runsOf(grid, highs[i], step);
    if (stacked) {
      const d = runs.map((run) => {
        const top = run.map((t) => `${x(t).toFixed(1)},${y(highs[i].get(t)).toFixed(1)}`);
        const bottom = run.slice().reverse().map((t) => `${x(t).toFixed(1)},${y(lows[i].get(t)).toFixed(1)}`);
        return `M${top.join("L")}L${bottom.join("L")}Z`;
      }).join("");
      return svg("path", { class: "series", d, fill: color, "fill-opacity": "0.35", stroke: color, "stroke-width": "1", "data-series": i });
    }
    const d = runs.map((run) => `M${run.map((t) => `${x(t).toFixed(1)},${y(highs[i].get(t)).toFixed(1)}`).join("L")}`).join("");
    // A lone point has no segment to stroke, so each run also gets dots when points are sparse.
    const dots = runs.filter((r) => r.length === 1).map((r) => svg("circle", { class: "point", cx: x(r[0]), cy: y(highs[i].get(r[0])), r: 2, fill: color }));
    return [svg("path", { class: "series", d, fill: "none", stroke: color, "stroke-width": "1.5", "data-series": i }), dots];
  });

  const hover = svg("line", { class: "hover", y1: PAD.top, y2: PAD.top + plotH, visibility: "hidden" });
  const selection = svg("rect", { class: "selection", y: PAD.top, height: plotH, visibility: "hidden" });
  const overlay = svg("rect", { class: "overlay", x: PAD.left, y: PAD.top, width: plotW, height: plotH, fill: "transparent" });
  const chart = svg("svg", {
    class: "graph",
    width,
    height: HEIGHT,
    viewBox: `0 0 ${width} ${HEIGHT}`,
    "data-series-count": series.length - hidden.size,
  }, axes, paths, hover, selection, overlay);
  const tip = h("div", { class: "graph-tooltip", hidden: true });
  replace(container, h("div", { class: "graph-wrap" }, chart, tip));

  const tAt = (evt) => {
    const r = chart.getBoundingClientRect();
    const px = Math.min(Math.max(evt.clientX - r.left, PAD.left), PAD.left + plotW);
    return { px, t: start + ((px - PAD.left) / plotW) * (end - start) };
  };
  let dragFrom = null;
  overlay.addEventListener("mousemove", (evt) => {
    const { px, t } = tAt(evt);
    if (dragFrom !== null) {
      selection.setAttribute("x", Math.min(dragFrom, px));
      selection.setAttribute("width", Math.abs(px - dragFrom));
      selection.setAttribute("visibility", "visible");
    }
    const snapped = start + Math.round((t - start) / step) * step;
    hover.setAttribute("x1", x(snapped));
    hover.setAttribute("x2", x(snapped));
    hover.setAttribute("visibility", "visible");
    showTip(tip, series, hidden, snapped, px > width / 2 ? px - 12 : px + 12, px > width / 2);
  });
  overlay.addEventListener("mouseleave", () => {
    hover.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });
  overlay.addEventListener("mousedown", (evt) => {
    evt.preventDefault();
    dragFrom = tAt(evt).px;
  });
  window.addEventListener("mouseup", function up(evt) {
    if (!chart.isConnected) return window.removeEventListener("mouseup", up);
    if (dragFrom === null) return;
    const from = dragFrom;
    dragFrom = null;
    selection.setAttribute("visibility", "hidden");
    const to = tAt(evt).px;
    if (Math.abs(to - from) < 5 || !onZoom) return;
    const t = (px) => start + ((px - PAD.left) / plotW) * (end - start);
    onZoom(Math.round(t(Math.min(from, to))), Math.round(t(Math.max(from, to))));
  });
}

// Consecutive grid times where the series has a value; a missing step breaks the line.
function runsOf(grid, values, step) {
  const runs = [];
  let run = [];
  let prev = null;
  for (const t of grid) {
    if (!values.has(t)) continue;
    if (prev !== null && t - prev > step) {
      runs.push(run);
      run = [];
    }
    run.push(t);
    prev = t;
  }
  if (run.length) runs.push(run);
  return runs;
}

function showTip(tip, series, hidden, t, left, flip) {
  const rows = [];
  series.forEach((s, i) => {
    const v = s.points.get(t);
    if (!hidden.has(i) && v !== undefined) rows.push({ i, v, s });
  });
  rows.sort((a, b) => b.v - a.v);
  replace(tip,
    h("div", { class: "tip-time" }, formatTime(t) + " UTC"),
    rows.slice(0, MAX_TOOLTIP_ROWS).map(({ i, v, s }) => h("div", { class: "tip-row" },
      h("span", { class: "swatch", style: `background:${colorOf(i)}` }),
      h("span", { class: "tip-labels" }, formatLabels(s.metric)),
      h("b", null, formatValue(v)))),
    rows.length > MAX_TOOLTIP_ROWS ? h("div", { class: "tip-more" }, `… ${rows.length - MAX_TOOLTIP_ROWS} more`) : null);
  tip.style.left = flip ? "" : `${left}px`;
  tip.style.right = flip ? `${tip.parentElement.clientWidth - left}px` : "";
  tip.hidden = rows.length === 0;
}

// The legend: one entry per series with its colour and label set. A click shows only that
// series (again: all), a ctrl/cmd-click toggles it, as Prometheus's legend does. `extra(metric)`
// may add nodes after the labels (the pod-logs link).
export function renderLegend(container, matrix, hidden, onChange, extra) {
  const entries = matrix.map((s, i) => h("li", {
    class: hidden.has(i) ? "legend-item off" : "legend-item",
    "data-series": i,
  },
  h("span", { class: "swatch", style: `background:${colorOf(i)}` }),
  h("button", {
    class: "legend-labels",
    type: "button",
    title: "click: show only this series; ctrl-click: toggle it",
    onclick: (e) => {
      const next = new Set(hidden);
      if (e.ctrlKey || e.metaKey) {
        if (next.has(i)) next.delete(i);
        else next.add(i);
      } else if (hidden.size === matrix.length - 1 && !hidden.has(i)) {
        next.clear();
      } else {
        next.clear();
        matrix.forEach((_, j) => j !== i && next.add(j));
      }
      onChange(next);
    },
  }, formatLabels(s.metric)),
  extra ? extra(s.metric) : null));
  replace(container, h("ul", { class: "legend" }, entries));
}
