// The log volume histogram: stacked bars of a `sum by (level) (count_over_time(…))` matrix,
// one bar per step, coloured by level, with a legend of the levels and their totals.

import { h, svg, replace } from "./dom.js";
import { timeTicks, tickLabel, formatTime } from "./time.js";
import { niceTicks, formatValue, PALETTE } from "./graph.js";

const HEIGHT = 120;
const PAD = { top: 6, right: 16, bottom: 22, left: 48 };

const LEVEL_COLORS = {
  critical: "#7f1d1d", fatal: "#7f1d1d", error: "#dc2626", err: "#dc2626", warn: "#d97706",
  warning: "#d97706", info: "#16a34a", debug: "#2563eb", trace: "#7c3aed", unknown: "#9ca3af",
};

const levelOf = (metric) => (metric && metric.level) || "unknown";
const colorOfLevel = (level, i) => LEVEL_COLORS[level.toLowerCase()] || PALETTE[i % PALETTE.length];

export function renderHistogram(container, matrix, { start, end, step }) {
  const width = Math.max(container.clientWidth || 0, 400);
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const totals = new Map();
  const levels = matrix.map((s, i) => {
    const points = new Map();
    let sum = 0;
    for (const [t, v] of s.values || []) {
      const n = parseFloat(v);
      points.set(Math.round(t * 1000), n);
      sum += n;
      totals.set(Math.round(t * 1000), (totals.get(Math.round(t * 1000)) || 0) + n);
    }
    return { level: levelOf(s.metric), color: colorOfLevel(levelOf(s.metric), i), points, sum };
  });
  const max = Math.max(1, ...totals.values());
  // Line counts are whole: no tick at half a line.
  const ticks = niceTicks(0, max, 3).filter(Number.isInteger);
  const top = ticks[ticks.length - 1];
  const x = (t) => PAD.left + ((t - start) / Math.max(end - start, 1)) * plotW;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const barW = Math.max(1, (step / Math.max(end - start, 1)) * plotW - 1);

  const parts = [];
  for (const v of ticks) {
    parts.push(svg("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
    parts.push(svg("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, formatValue(v)));
  }
  const { step: tStep, ticks: tTicks } = timeTicks(start, end, Math.max(2, Math.floor(plotW / 90)));
  for (const t of tTicks) parts.push(svg("text", { class: "tick", x: x(t), y: HEIGHT - 6, "text-anchor": "middle" }, tickLabel(t, tStep)));
  const base = new Map();
  for (const l of levels) {
    for (const [t, v] of l.points) {
      if (!(v > 0)) continue;
      const b = base.get(t) || 0;
      base.set(t, b + v);
      // A bar covers the step that ends at its timestamp, as count_over_time counts it.
      parts.push(svg("rect", {
        class: "bar",
        x: (x(t) - barW).toFixed(1),
        y: y(b + v).toFixed(1),
        width: barW.toFixed(1),
        height: Math.max(0.5, y(b) - y(b + v)).toFixed(1),
        fill: l.color,
        "data-level": l.level,
      }, svg("title", null, `${formatTime(t)} UTC · ${l.level}: ${v}`)));
    }
  }
  replace(container,
    svg("svg", { class: "histogram", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}` }, parts),
    h("ul", { class: "legend levels" }, levels.map((l) => h("li", { class: "legend-item" },
      h("span", { class: "swatch", style: `background:${l.color}` }), `${l.level} (${l.sum})`))));
}
