// The links between a pod's metrics and its logs, both ways and over the same time range:
// from a series with a `pod` label on the Query page to that pod's lines on the Logs page, and
// from a log line of a pod to a Query page with the pod's CPU and memory (the cAdvisor
// container metrics the agent collects, summed by container as the shipped dashboards do).

import { h } from "./dom.js";
import { autoStep, formatTime, formatDuration } from "./time.js";

// A label value as a double-quoted PromQL/LogQL string.
export const quote = (v) => `"${String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;

// The equality matchers naming the pod: its namespace when known, and its name.
function podMatchers(labels) {
  const sel = [];
  if (labels.namespace) sel.push(`namespace=${quote(labels.namespace)}`);
  sel.push(`pod=${quote(labels.pod)}`);
  return sel;
}

// `/logs?…` for the pod of `metric` over `range` ({start, end} in ms), or null without a pod.
export function podLogsHref(metric, range) {
  if (!metric.pod) return null;
  const p = new URLSearchParams({
    query: `{${podMatchers(metric).join(", ")}}`,
    range_input: formatDuration(range.end - range.start),
    end_input: formatTime(range.end),
  });
  return `/logs?${p}`;
}

export function podLogsLink(metric, range) {
  const href = podLogsHref(metric, range);
  if (!href) return null;
  return h("a", { class: "pod-logs", href, title: `logs of pod ${metric.pod} over this range` }, "logs");
}

// The CPU (cores) and memory (working set bytes) queries of a pod, by container; the rate
// window covers four steps of the graph and at least a minute, so a 15s scrape interval still
// gives every step a rate, as Grafana's `$__rate_interval` does.
export function podMetricsQueries(labels, rangeMs) {
  const sel = [...podMatchers(labels), 'container!=""'].join(", ");
  const win = formatDuration(Math.max(4 * autoStep(rangeMs), 60000));
  return [
    `sum by (container) (rate(container_cpu_usage_seconds_total{${sel}}[${win}]))`,
    `sum by (container) (container_memory_working_set_bytes{${sel}})`,
  ];
}

// `/query?…` with the pod's CPU and memory graphs over `range`, or null without a pod.
export function podMetricsHref(labels, range) {
  if (!labels.pod) return null;
  const span = Math.max(range.end - range.start, 1000);
  const p = new URLSearchParams();
  podMetricsQueries(labels, span).forEach((expr, i) => {
    p.set(`g${i}.expr`, expr);
    p.set(`g${i}.tab`, "0");
    p.set(`g${i}.range_input`, formatDuration(span));
    p.set(`g${i}.end_input`, formatTime(range.end));
  });
  return `/query?${p}`;
}

export function podMetricsLink(labels, range) {
  const href = podMetricsHref(labels, range);
  if (!href) return null;
  return h("a", { class: "pod-metrics", href, title: `CPU and memory of pod ${labels.pod} over this range` }, `metrics of pod ${labels.pod}`);
}
