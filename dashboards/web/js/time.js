// Times and durations as the UI reads and writes them: Prometheus duration strings ("1h30m"),
// the "YYYY-MM-DD HH:MM:SS" end times Prometheus's UI keeps in its URLs (UTC), and tick labels.

const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };

// Milliseconds in a duration such as "90s", "1h30m" or "2d"; null when it is not one.
export function parseDuration(text) {
  const s = String(text || "").trim();
  if (!s) return null;
  const re = /(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)/gy;
  let total = 0;
  let m;
  let at = 0;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]) * UNITS[m[2]];
    at = re.lastIndex;
  }
  if (at !== s.length) {
    // A bare number is seconds, as the APIs read it.
    return /^\d+(\.\d+)?$/.test(s) ? parseFloat(s) * 1000 : null;
  }
  return total;
}

// The shortest duration string for `ms` ("1h30m", "15s", "250ms").
export function formatDuration(ms) {
  if (!(ms > 0)) return "0s";
  let rest = Math.round(ms);
  let out = "";
  for (const [unit, size] of [["y", UNITS.y], ["w", UNITS.w], ["d", UNITS.d], ["h", UNITS.h], ["m", UNITS.m], ["s", UNITS.s], ["ms", 1]]) {
    if (rest >= size) {
      out += Math.floor(rest / size) + unit;
      rest %= size;
    }
  }
  return out;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// "2024-05-01 12:30:00", UTC: the form of Prometheus's `g0.end_input`.
export function formatTime(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

// Milliseconds for a time typed as "YYYY-MM-DD HH:MM[:SS]" (UTC), RFC 3339, or Unix seconds;
// null when it is none of them.
export function parseTime(text) {
  const s = String(text || "").trim();
  if (!s) return null;
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s) * 1000;
  const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(Z|[+-]\d\d:?\d\d)?$/.exec(s);
  if (!m) return null;
  const iso = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] || "00"}${m[7] ? "." + m[7] : ""}${m[8] || "Z"}`;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

// Prometheus UI's default resolution: about 250 points across the range, at least 1s.
export function autoStep(rangeMs) {
  return Math.max(Math.floor(rangeMs / 250000), 1) * 1000;
}

// A tick label for time `ms` on an axis whose ticks are `stepMs` apart.
export function tickLabel(ms, stepMs) {
  const d = new Date(ms);
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  if (stepMs < 60000) return `${hm}:${pad(d.getUTCSeconds())}`;
  if (stepMs < 86400000 && !(d.getUTCHours() === 0 && d.getUTCMinutes() === 0)) return hm;
  return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

// Time-axis tick spacings, from a second to a week.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

// Tick times for [start, end] with at most `maxTicks` ticks, on round UTC boundaries.
export function timeTicks(start, end, maxTicks) {
  const span = Math.max(end - start, 1);
  const step = TIME_STEPS.find((s) => span / s <= maxTicks) || Math.ceil(span / maxTicks / 86400000) * 86400000;
  const ticks = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return { step, ticks };
}

// Loki's nanosecond timestamps as strings, from milliseconds, without float rounding.
export function msToNs(ms) {
  return `${Math.round(ms)}000000`;
}
