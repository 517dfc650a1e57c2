// The Alerts page: firing alerts grouped as the router groups them (Alertmanager's
// /api/v2/alerts/groups), pending alerts from the rules (/api/v1/alerts), and the silences:
// listed, created from an alert with its labels prefilled, and expired.

import { h, replace } from "./dom.js";
import { get, v2 } from "./api.js";
import { badge, ago, labelChips, section } from "./table.js";
import { parseDuration, formatDuration } from "./time.js";

// `{a="b", c=~"d.*", e!="f"}` (braces optional) → Alertmanager v2 matchers; throws on a
// malformed matcher with the text that could not be read.
export function parseMatchers(text) {
  const body = text.trim().replace(/^\{/, "").replace(/\}$/, "").trim();
  const out = [];
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let i = 0;
  while (i < body.length) {
    re.lastIndex = i;
    const m = re.exec(body);
    if (!m) throw new Error(`cannot read a matcher at: ${body.slice(i, i + 40)}`);
    const value = m[3].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    out.push({ name: m[1], value, isRegex: m[2].includes("~"), isEqual: !m[2].startsWith("!") });
    i = re.lastIndex;
  }
  if (!out.length) throw new Error("a silence needs at least one matcher");
  return out;
}

// The inverse of parseMatchers, for prefilling from an alert or showing a silence.
export function formatMatchers(matchers) {
  const op = (m) => (m.isEqual === false ? (m.isRegex ? "!~" : "!=") : m.isRegex ? "=~" : "=");
  const quote = (v) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  return "{" + matchers.map((m) => `${m.name}${op(m)}"${quote(m.value)}"`).join(", ") + "}";
}

export function matchersOfLabels(labels) {
  return Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }));
}

// The summary (or description) first, then every other annotation; URLs become links.
function annotationsOf(a) {
  const ann = a.annotations || {};
  const headline = ann.summary ? "summary" : ann.description ? "description" : null;
  const rest = Object.entries(ann).filter(([k]) => k !== headline).sort(([x], [y]) => x.localeCompare(y));
  return h("div", { class: "annotations" },
    headline ? h("div", { class: "summary" }, ann[headline]) : null,
    rest.map(([k, v]) => h("div", { class: "annotation" }, h("span", { class: "hint" }, `${k}: `), /^https?:\/\//.test(v) ? h("a", { href: v }, v) : v)));
}

function alertRow(a, onSilence) {
  const state = a.status ? a.status.state : a.state;
  const silencedBy = (a.status && a.status.silencedBy) || [];
  const inhibitedBy = (a.status && a.status.inhibitedBy) || [];
  return h("tr", { class: `alert alert-${state}`, dataset: { alertname: a.labels.alertname || "" } },
    h("td", null, labelChips(a.labels), annotationsOf(a)),
    h("td", null, badge(state),
      silencedBy.length ? h("div", { class: "hint" }, `silenced by ${silencedBy.join(", ")}`) : null,
      inhibitedBy.length ? h("div", { class: "hint" }, `inhibited by ${inhibitedBy.join(", ")}`) : null),
    h("td", null, ago(a.startsAt || a.activeAt)),
    h("td", null,
      onSilence ? h("button", { class: "small silence-alert", onclick: () => onSilence(a.labels) }, "Silence") : null,
      a.generatorURL ? h("a", { class: "source", href: a.generatorURL }, " source") : null));
}

function alertTable(alerts, onSilence) {
  return h("table", { class: "status-table" },
    h("thead", null, h("tr", null, ["Alert", "State", "Since", ""].map((t) => h("th", null, t)))),
    h("tbody", null, alerts.map((a) => alertRow(a, onSilence))));
}

function silenceRow(s, onExpire) {
  const state = s.status.state;
  return h("tr", { class: `silence silence-${state}`, dataset: { id: s.id } },
    h("td", null, h("code", null, formatMatchers(s.matchers)), s.comment ? h("div", { class: "hint" }, s.comment) : null),
    h("td", null, badge(state)),
    h("td", null, s.createdBy || ""),
    h("td", null, state === "expired" ? `ended ${ago(s.endsAt)}` : state === "pending" ? `starts ${ago(s.startsAt)}` : `ends ${ago(s.endsAt)}`),
    h("td", null, state === "expired" ? null : h("button", { class: "small expire-silence", onclick: () => onExpire(s) }, "Expire")));
}

// The form that creates a silence; `prefill(labels)` fills it from an alert.
function silenceForm(onCreated) {
  const matchers = h("input", { class: "silence-matchers", placeholder: '{alertname="X", instance=~"node-.*"}', size: 60 });
  const duration = h("input", { class: "silence-duration", value: "2h", size: 6 });
  const author = h("input", { class: "silence-author", placeholder: "your name", value: localStorage.getItem("vigil.silence.author") || "" });
  const comment = h("input", { class: "silence-comment", placeholder: "why", size: 40 });
  const status = h("div", { class: "form-status" });
  const submit = async (e) => {
    e.preventDefault();
    try {
      const ms = parseDuration(duration.value.trim());
      if (!ms || ms <= 0) throw new Error(`not a duration: ${duration.value}`);
      const now = Date.now();
      const body = { matchers: parseMatchers(matchers.value), startsAt: new Date(now).toISOString(), endsAt: new Date(now + ms).toISOString(), createdBy: author.value.trim(), comment: comment.value.trim() };
      localStorage.setItem("vigil.silence.author", body.createdBy);
      const res = await v2("POST", "/api/v2/silences", body);
      replace(status, h("span", { class: "ok" }, `Silence ${res.silenceID} created, for ${formatDuration(ms)}.`));
      onCreated();
    } catch (err) {
      replace(status, h("span", { class: "error", role: "alert" }, err.message));
    }
  };
  const form = h("form", { class: "silence-form", onsubmit: submit },
    h("label", { class: "inline" }, "Matchers ", matchers),
    h("label", { class: "inline" }, "For ", duration),
    h("label", { class: "inline" }, "By ", author),
    h("label", { class: "inline" }, "Comment ", comment),
    h("button", { class: "primary", type: "submit" }, "Create silence"),
    status);
  form.prefill = (labels) => {
    matchers.value = formatMatchers(matchersOfLabels(labels));
    comment.focus();
    form.scrollIntoView({ block: "nearest" });
  };
  return form;
}

export function mount(root) {
  const groupsBody = h("div", { class: "alert-groups" }, h("p", { class: "hint" }, "Loading…"));
  const pendingBody = h("div", { class: "pending-alerts" });
  const silencesBody = h("div", { class: "silences" });
  const showSuppressed = h("input", { type: "checkbox", class: "show-suppressed", checked: true });
  let form;
  const refresh = async () => {
    const inc = showSuppressed.checked ? "true" : "false";
    const [groups, rules, silences] = await Promise.allSettled([
      v2("GET", `/api/v2/alerts/groups?silenced=${inc}&inhibited=${inc}`),
      get("/api/v1/alerts"),
      v2("GET", "/api/v2/silences"),
    ]);
    if (groups.status === "rejected") replace(groupsBody, h("p", { class: "error", role: "alert" }, groups.reason.message));
    else if (!groups.value.length) replace(groupsBody, h("p", { class: "hint" }, "No alerts are firing."));
    else replace(groupsBody, groups.value.map((g) => section(
      h("span", { class: "group-title" }, g.receiver.name), h("span", null, " ", labelChips(g.labels), h("span", { class: "hint" }, ` ${g.alerts.length} alert${g.alerts.length === 1 ? "" : "s"}`)),
      alertTable(g.alerts, (labels) => form.prefill(labels)))));
    if (rules.status === "rejected") replace(pendingBody, h("p", { class: "error" }, rules.reason.message));
    else {
      const pending = (rules.value.alerts || []).filter((a) => a.state === "pending");
      replace(pendingBody, pending.length ? alertTable(pending, null) : h("p", { class: "hint" }, "No alerts are pending."));
    }
    if (silences.status === "rejected") replace(silencesBody, h("p", { class: "error", role: "alert" }, silences.reason.message));
    else {
      const order = { active: 0, pending: 1, expired: 2 };
      const list = silences.value.slice().sort((a, b) => order[a.status.state] - order[b.status.state] || b.updatedAt.localeCompare(a.updatedAt));
      replace(silencesBody, list.length ? h("table", { class: "status-table" },
        h("thead", null, h("tr", null, ["Matchers", "State", "Created by", "Ends", ""].map((t) => h("th", null, t)))),
        h("tbody", null, list.map((s) => silenceRow(s, expire)))) : h("p", { class: "hint" }, "No silences."));
    }
  };
  const expire = async (s) => {
    try {
      await v2("DELETE", `/api/v2/silence/${encodeURIComponent(s.id)}`);
    } catch (e) {
      replace(silencesBody, h("p", { class: "error", role: "alert" }, e.message));
      return;
    }
    refresh();
  };
  form = silenceForm(refresh);
  showSuppressed.addEventListener("change", refresh);
  replace(root, h("div", { class: "status-page", "data-page": "alerts" },
    h("h2", null, "Alerts"),
    h("label", { class: "inline" }, showSuppressed, " show silenced and inhibited"),
    h("h3", null, "Firing, by notification group"), groupsBody,
    h("h3", null, "Pending"), pendingBody,
    h("h3", null, "Silences"), form, silencesBody));
  return refresh();
}
