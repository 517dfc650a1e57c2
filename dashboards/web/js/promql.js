// PromQL for the editor: a tokenizer for highlighting, the completion context at the cursor
// (metric name, label name, label value, duration), and suggestions drawn from the
// Prometheus API (`/api/v1/label/__name__/values`, `/api/v1/labels`, label values).

import { cachedList } from "./api.js";

export const FUNCTIONS = [
  "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
  "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
  "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta",
  "deriv", "double_exponential_smoothing", "exp", "floor", "histogram_avg", "histogram_count",
  "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
  "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
  "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time",
  "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
  "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort",
  "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time",
  "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
];

export const AGGREGATIONS = [
  "avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max", "min",
  "quantile", "stddev", "stdvar", "sum", "topk",
];

export const KEYWORDS = [
  "and", "atan2", "bool", "by", "group_left", "group_right", "ignoring", "offset", "on", "or",
  "unless", "without",
];

// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

const FUNCTION_SET = new Set(FUNCTIONS);
const AGGREGATION_SET = new Set(AGGREGATIONS);
const KEYWORD_SET = new Set(KEYWORDS);

const DURATIONS = ["1m", "5m", "10m", "15m", "30m", "1h", "6h", "1d"];

// Splits `text` into tokens `{type, text, start}`; every character belongs to one token, so
// joining the texts gives `text` back (the editor relies on that for its overlay).
export function tokenize(text) {
  const out = [];
  let i = 0;
  // Where each open brace or paren came from, to tell label names from metric names.
  const stack = [];
  let pendingLabelList = false;
  const push = (type, end) => {
    out.push({ type, text: text.slice(i, end), start: i });
    i = end;
  };
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let m;
    if ((m = /^\s+/.exec(rest))) push("ws", i + m[0].length);
    else if (c === "#") push("comment", text.indexOf("\n", i) === -1 ? text.length : text.indexOf("\n", i));
    else if (c === '"' || c === "'" || c === "`") push("string", stringEnd(text, i));
    else if ((m = /^(\d+(\.\d+)?(ms|[smhdwy]))+(?![\w.])/.exec(rest))) push("duration", i + m[0].length);
    else if ((m = /^(0x[0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)/.exec(rest))) push("number", i + m[0].length);
    else if ((m = /^[a-zA-Z_:][\w:]*/.exec(rest))) {
      const word = m[0];
      const top = stack[stack.length - 1];
      const callNext = /^\s*\(/.test(text.slice(i + word.length));
      let type = "metric";
      if (top === "{" || top === "labels") type = "label";
      else if (KEYWORD_SET.has(word.toLowerCase())) type = "keyword";
      else if (AGGREGATION_SET.has(word.toLowerCase()) && (callNext || /^\s+(by|without)\b/i.test(text.slice(i + word.length)))) type = "aggregation";
      else if (FUNCTION_SET.has(word) && callNext) type = "function";
      else if (/^(inf|nan)$/i.test(word)) type = "number";
      pendingLabelList = type === "keyword" && LABEL_LIST_KEYWORDS.has(word.toLowerCase());
      push(type, i + word.length);
      continue;
    } else if (c === "{") {
      stack.push("{");
      push("brace", i + 1);
    } else if (c === "(") {
      stack.push(pendingLabelList ? "labels" : "(");
      push("paren", i + 1);
    } else if (c === "[") {
      stack.push("[");
      push("bracket", i + 1);
    } else if (c === "}" || c === ")" || c === "]") {
      stack.pop();
      push(c === "}" ? "brace" : c === ")" ? "paren" : "bracket", i + 1);
    } else if ((m = /^(==|!=|<=|>=|=~|!~|[-+*/%^<>=,@])/.exec(rest))) push("op", i + m[0].length);
    else push("error", i + 1);
    if (!/^\s/.test(c)) pendingLabelList = false;
  }
  return out;
}

// The end (exclusive) of the string literal opening at `i`; the text's end if unterminated.
export function stringEnd(text, i) {
  const q = text[i];
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === "\\" && q !== "`") j++;
    else if (text[j] === q) return j + 1;
  }
  return text.length;
}

// True when a string token's text holds its closing quote.
export function isClosed(tok) {
  for (let j = 1; j < tok.length; j++) {
    if (tok[j] === "\\" && tok[0] !== "`") j++;
    else if (tok[j] === tok[0]) return true;
  }
  return false;
}

// What may be completed at `pos`: `{kind, from, prefix, metric?, label?, quoted?}`, or null.
export function context(text, pos) {
  const before = text.slice(0, pos);
  const toks = tokenize(before);
  const last = toks[toks.length - 1];
  // The enclosing bracket and, for braces, the metric name written before it.
  const stack = [];
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k];
    if (t.text === "{" || t.text === "(" || t.text === "[") stack.push(k);
    else if (t.text === "}" || t.text === ")" || t.text === "]") stack.pop();
  }
  const open = stack.length ? toks[stack[stack.length - 1]] : null;
  const prevSolid = (k) => {
    for (let j = k - 1; j >= 0; j--) if (toks[j].type !== "ws") return toks[j];
    return null;
  };
  if (last && last.type === "string" && !isClosed(last.text)) {
    // Inside an unterminated string: a label value, if it follows `label op`.
    const op = prevSolid(toks.length - 1);
    const label = op && op.type === "op" ? prevSolid(toks.indexOf(op)) : null;
    if (open && open.text === "{" && label && label.type === "label") {
      return { kind: "labelValue", from: last.start + 1, prefix: last.text.slice(1), label: label.text, metric: metricBefore(toks, toks.indexOf(open)), quoted: true };
    }
    return null;
  }
  const word = last && ["metric", "label", "function", "aggregation", "keyword"].includes(last.type) ? last : null;
  const from = word ? word.start : pos;
  const prefix = word ? word.text : "";
  if (open && open.text === "[") {
    const typed = last && (last.type === "duration" || last.type === "number") ? last : null;
    return { kind: "duration", from: typed ? typed.start : pos, prefix: typed ? typed.text : "" };
  }
  if (open && open.text === "{") {
    const prev = prevSolid(word ? toks.length - 1 : toks.length);
    const metric = metricBefore(toks, toks.indexOf(open));
    if (prev && prev.type === "op" && prev.text !== ",") {
      const label = prevSolid(toks.indexOf(prev));
      if (label && label.type === "label") return { kind: "labelValue", from: pos, prefix: "", label: label.text, metric, quoted: false };
      return null;
    }
    return { kind: "labelName", from, prefix, metric };
  }
  if (open && open.text === "(") {
    const kw = prevSolid(toks.indexOf(open));
    if (kw && kw.type === "keyword" && LABEL_LIST_KEYWORDS.has(kw.text.toLowerCase())) return { kind: "labelName", from, prefix, metric: null };
  }
  if (last && last.type !== "ws" && !word && !["paren", "op", "brace", "bracket"].includes(last.type)) return null;
  return { kind: "metric", from, prefix };
}

// The metric name immediately before the brace at token index `k`, if any.
function metricBefore(toks, k) {
  for (let j = k - 1; j >= 0; j--) {
    if (toks[j].type === "ws") continue;
    return toks[j].type === "metric" ? toks[j].text : null;
  }
  return null;
}

// Suggestions for a context: `[{text, kind, insert}]`, filtered by the typed prefix.
export async function suggest(ctx) {
  const p = ctx.prefix.toLowerCase();
  const keep = (s) => s.toLowerCase().startsWith(p) && s !== ctx.prefix;
  if (ctx.kind === "duration") return DURATIONS.filter(keep).map((d) => ({ text: d, kind: "duration", insert: d }));
  if (ctx.kind === "labelName") {
    const params = ctx.metric ? { "match[]": ctx.metric } : {};
    const names = await cachedList("/api/v1/labels", params);
    return names.filter((n) => n !== "__name__" && keep(n)).map((n) => ({ text: n, kind: "label", insert: n }));
  }
  if (ctx.kind === "labelValue") {
    const params = ctx.metric ? { "match[]": ctx.metric } : {};
    const values = await cachedList(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`, params);
    return values.filter((v) => v.toLowerCase().startsWith(p)).map((v) => ({
      text: v,
      kind: "value",
      insert: ctx.quoted ? escapeString(v) : `"${escapeString(v)}"`,
    }));
  }
  const metrics = await cachedList("/api/v1/label/__name__/values");
  const out = [];
  for (const f of AGGREGATIONS) if (keep(f)) out.push({ text: f, kind: "aggregation", insert: f + "(" });
  for (const f of FUNCTIONS) if (keep(f)) out.push({ text: f, kind: "function", insert: f + "(" });
  if (p) for (const k of KEYWORDS) if (keep(k)) out.push({ text: k, kind: "keyword", insert: k });
  for (const m of metrics) if (keep(m)) out.push({ text: m, kind: "metric", insert: m });
  // Metric names first when the user has typed something that names one.
  out.sort((a, b) => (a.kind === "metric" ? 0 : 1) - (b.kind === "metric" ? 0 : 1) || a.text.localeCompare(b.text));
  return out;
}

export function escapeString(v) {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

// The `[line, column]` (1-based) an API error message points at, or null. Prometheus writes
// "1:14: parse error: …"; Loki "parse error at line 1, col 14: …".
export function errorPosition(message) {
  let m = /(?:^|\s|")(\d+):(\d+)(?::\d+)?: parse error/.exec(message);
  if (m) return [parseInt(m[1], 10), parseInt(m[2], 10)];
  m = /line (\d+), col(?:umn)? (\d+)/.exec(message);
  if (m) return [parseInt(m[1], 10), parseInt(m[2], 10)];
  return null;
}

export const language = { name: "promql", tokenize, context, suggest };
