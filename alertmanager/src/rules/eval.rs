//! One evaluation of one rule: the alert state machine of Prometheus's `rules/alerting.go`
//! (pending → firing → inactive, `keep_firing_for`, the 15-minute resolved retention, the
//! resend rule) and the recording rule's write with staleness markers.

use super::file::{AlertingRule, RecordingRule};
use super::template::TemplateData;
use super::QueryFn;
use model::{Appender, Labels, Sample, Series, STALE_NAN_BITS};
use std::collections::{BTreeMap, BTreeSet};

/// The series of every pending or firing alert: value 1, labels plus `alertstate`.
pub const ALERTS_METRIC: &str = "ALERTS";
/// The series remembering when each pending or firing alert became active (Unix seconds), so
/// the `for` state can be restored after a restart.
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";

/// How long a resolved alert is kept and re-sent, so every Alertmanager hears it resolved
/// (Prometheus's `resolvedRetention`).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// The state of an alert instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    /// Prometheus's name for the state, as `/api/v1/alerts` and `ALERTS{alertstate}` use it.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// A pending or firing alert, as the rule manager reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlert {
    /// The rule's `alert` name.
    pub rule: String,
    pub labels: Labels,
    pub annotations: Labels,
    pub state: AlertState,
    /// Milliseconds since the epoch of the evaluation that first saw the alert.
    pub active_at_ms: i64,
    /// Milliseconds since the epoch of the evaluation that made it fire.
    pub fired_at_ms: Option<i64>,
    /// The sample value of the most recent evaluation that saw it.
    pub value: f64,
    /// Since when a firing alert has been kept firing by `keep_firing_for` although its
    /// condition no longer holds.
    pub keep_firing_since_ms: Option<i64>,
}

/// One alert instance of an alerting rule (Prometheus's `rules.Alert`).
#[derive(Clone, Debug)]
pub(crate) struct AlertInstance {
    pub labels: Labels,
    pub annotations: Labels,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

impl AlertInstance {
    /// Prometheus's `needsSending`: never while pending; at once after resolving; otherwise
    /// when the resend delay has strictly passed.
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        match (self.resolved_at, self.last_sent_at) {
            (Some(resolved), Some(sent)) if resolved > sent => true,
            (_, None) => true,
            (_, Some(sent)) => sent + resend_delay_ms < ts,
        }
    }
}

/// What one evaluation needs from its group and manager.
pub(crate) struct EvalContext<'a> {
    pub ts_ms: i64,
    /// The timestamp the query runs at: `ts_ms` minus the group's `query_offset`.
    pub query_ts_ms: i64,
    pub query: &'a QueryFn,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub limit: usize,
}

/// The alerts of one alerting rule, keyed by their final label set.
#[derive(Debug, Default)]
pub(crate) struct AlertingState {
    active: BTreeMap<Labels, AlertInstance>,
    /// The `ALERTS`/`ALERTS_FOR_STATE` series written last time, so the ones that disappear
    /// get a staleness marker.
    written: BTreeSet<Labels>,
}

impl AlertingState {
    /// Evaluates the rule at `ctx.ts_ms` and advances every alert's state. On error the state is
    /// left as it was (except for a limit overflow, which clears it, as Prometheus does).
    pub fn eval(&mut self, rule: &AlertingRule, ctx: &EvalContext<'_>) -> Result<(), String> {
        let ts = ctx.ts_ms;
        let vector = (ctx.query)(&rule.expr, ctx.query_ts_ms)?;
        let mut seen: BTreeMap<Labels, AlertInstance> = BTreeMap::new();
        for (sample_labels, value) in vector {
            let data = TemplateData {
                labels: &sample_labels,
                value,
                external_labels: ctx.external_labels,
                external_url: ctx.external_url,
                query: Some(ctx.query),
                ts_ms: ctx.query_ts_ms,
            };
            let mut labels = sample_labels.without_metric_name();
            for (name, template) in &rule.label_templates {
                labels = labels.with(name, &template.expand_or_error_text(&data));
            }
            labels = labels.with("alertname", &rule.name);
            let annotations = Labels::from_pairs(
                rule.annotation_templates
                    .iter()
                    .map(|(name, t)| (name.clone(), t.expand_or_error_text(&data))),
            );
            if seen.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            let instance = AlertInstance {
                labels: labels.clone(),
                annotations,
                state: AlertState::Pending,
                value,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                last_sent_at: None,
                valid_until: 0,
                keep_firing_since: None,
            };
            seen.insert(labels, instance);
        }

        for (labels, fresh) in &seen {
            match self.active.get_mut(labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = fresh.value;
                    a.annotations = fresh.annotations.clone();
                }
                _ => {
                    self.active.insert(labels.clone(), fresh.clone());
                }
            }
        }

        let hold_ms = rule.hold.as_millis() as i64;
        let keep_ms = rule.keep_firing_for.as_millis() as i64;
        let mut active_or_pending = 0;
        let mut remove = Vec::new();
        for (labels, a) in self.active.iter_mut() {
            if !seen.contains_key(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_ms;
                }
                // A pending alert that disappears never happened; a resolved one is kept for a
                // while so it is re-sent as resolved.
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(labels.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            active_or_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
        }
        for labels in remove {
            self.active.remove(&labels);
        }
        if ctx.limit > 0 && active_or_pending > ctx.limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {} with {active_or_pending} alerts",
                ctx.limit
            ));
        }
        Ok(())
    }

    /// The alerts due to be sent at `ts` (Prometheus's `sendAlerts`), marking them sent.
    pub fn take_due(
        &mut self,
        ts: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
    ) -> Vec<AlertInstance> {
        let mut due = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts, resend_delay_ms) {
                a.last_sent_at = Some(ts);
                // Long enough to survive two missed evaluations or sends.
                a.valid_until = ts + 4 * resend_delay_ms.max(interval_ms);
                due.push(a.clone());
            }
        }
        due
    }

    /// Prometheus's `ALERTS{alertstate}` (1) and `ALERTS_FOR_STATE` (active since, in whole
    /// Unix seconds) samples at `t` for every pending or firing alert, plus a staleness marker
    /// for each series written last time and gone now (a state change moves `ALERTS` to a new
    /// series).
    pub fn state_series(&mut self, t: i64) -> Vec<Series> {
        let mut out = Vec::new();
        let mut current = BTreeSet::new();
        for a in self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
        {
            let alerts = a
                .labels
                .with(model::METRIC_NAME, ALERTS_METRIC)
                .with("alertstate", a.state.as_str());
            let for_state = a.labels.with(model::METRIC_NAME, ALERTS_FOR_STATE_METRIC);
            let active_since = a.active_at.div_euclid(1000) as f64;
            for (labels, v) in [(alerts, 1.0), (for_state, active_since)] {
                current.insert(labels.clone());
                out.push(Series {
                    labels,
                    samples: vec![Sample { t, v }],
                });
            }
        }
        for gone in self.written.difference(&current) {
            out.push(Series {
                labels: gone.clone(),
                samples: vec![Sample {
                    t,
                    v: f64::from_bits(STALE_NAN_BITS),
                }],
            });
        }
        self.written = current;
        out
    }

    /// Every alert instance, for restoring `active_at` after a restart.
    pub(crate) fn active_mut(&mut self) -> impl Iterator<Item = &mut AlertInstance> {
        self.active
            .values_mut()
            .filter(|a| a.state != AlertState::Inactive)
    }

    /// Pending and firing alerts.
    /// The `ALERTS`/`ALERTS_FOR_STATE` series written last time.
    pub fn written(&self) -> impl Iterator<Item = &Labels> {
        self.written.iter()
    }

    pub fn active(&self, rule: &str) -> impl Iterator<Item = ActiveAlert> + '_ {
        let rule = rule.to_string();
        self.active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .map(move |a| ActiveAlert {
                rule: rule.clone(),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                state: a.state,
                active_at_ms: a.active_at,
                fired_at_ms: a.fired_at,
                value: a.value,
                keep_firing_since_ms: a.keep_firing_since,
            })
    }
}

/// The series a recording rule wrote last time, so the ones that disappear get a staleness
/// marker.
#[derive(Debug, Default)]
pub(crate) struct RecordingState {
    last: BTreeSet<Labels>,
}

impl RecordingState {
    /// The series written last time.
    pub fn written(&self) -> impl Iterator<Item = &Labels> {
        self.last.iter()
    }

    /// Evaluates the rule and appends its result (and stale markers) at `ctx.query_ts_ms`.
    /// Returns the number of series written.
    pub fn eval(
        &mut self,
        rule: &RecordingRule,
        ctx: &EvalContext<'_>,
        appender: &dyn Appender,
    ) -> Result<usize, String> {
        let vector = (ctx.query)(&rule.expr, ctx.query_ts_ms)?;
        let t = ctx.query_ts_ms;
        let mut batch = Vec::with_capacity(vector.len());
        let mut current = BTreeSet::new();
        for (labels, v) in vector {
            let mut labels = labels.with(model::METRIC_NAME, &rule.name);
            for (name, value) in &rule.labels {
                labels = labels.with(name, value);
            }
            if !current.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .to_string(),
                );
            }
            batch.push(Series {
                labels,
                samples: vec![Sample { t, v }],
            });
        }
        if ctx.limit > 0 && batch.len() > ctx.limit {
            return Err(format!(
                "exceeded limit of {} with {} series",
                ctx.limit,
                batch.len()
            ));
        }
        let written = batch.len();
        for gone in self.last.difference(&current) {
            batch.push(Series {
                labels: gone.clone(),
                samples: vec![Sample {
                    t,
                    v: f64::from_bits(STALE_NAN_BITS),
                }],
            });
        }
        let outcome = appender.append(&batch).map_err(|e| e.to_string())?;
        if outcome.rejected() > 0 {
            tracing::warn!(
                rule = %rule.name,
                out_of_order = outcome.out_of_order,
                duplicate_timestamp = outcome.duplicate_timestamp,
                "recording rule samples refused by storage"
            );
        }
        self.last = current;
        Ok(written)
    }
}
