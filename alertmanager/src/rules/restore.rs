//! Restoring the `for` state after a restart (Prometheus's `Group.RestoreForState`): on a
//! group's first evaluation, each pending or firing alert looks up its `ALERTS_FOR_STATE`
//! series within the outage tolerance and takes back the time it had already spent active, so
//! a restart neither fires an alert early nor makes a long `for` start over.

use super::eval::AlertingState;
use super::file::AlertingRule;
use super::ALERTS_FOR_STATE_METRIC;
use model::{MatchOp, Matcher, Querier};
use std::time::Duration;

/// Prometheus's `--rules.alert.for-outage-tolerance` default.
pub const DEFAULT_FOR_OUTAGE_TOLERANCE: Duration = Duration::from_secs(3600);
/// Prometheus's `--rules.alert.for-grace-period` default.
pub const DEFAULT_FOR_GRACE_PERIOD: Duration = Duration::from_secs(600);

/// How `for` state is restored on startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForRestoreOptions {
    /// Longest outage after which the `for` state is still restored: `ALERTS_FOR_STATE`
    /// samples older than this before the first evaluation are ignored.
    pub outage_tolerance: Duration,
    /// Least time an alert whose `for` is at least this long stays pending after a restart;
    /// rules with a shorter `for` are not restored at all.
    pub grace_period: Duration,
}

impl Default for ForRestoreOptions {
    fn default() -> Self {
        ForRestoreOptions {
            outage_tolerance: DEFAULT_FOR_OUTAGE_TOLERANCE,
            grace_period: DEFAULT_FOR_GRACE_PERIOD,
        }
    }
}

/// Moves each active alert's `active_at` as Prometheus does, at the first evaluation `ts_ms`
/// after startup. Errors reading the store leave the alert as evaluated (pending from now).
pub(crate) fn restore_for_state(
    state: &mut AlertingState,
    rule: &AlertingRule,
    store: &dyn Querier,
    ts_ms: i64,
    opts: ForRestoreOptions,
) {
    let hold_ms = rule.hold.as_millis() as i64;
    let grace_ms = opts.grace_period.as_millis() as i64;
    if hold_ms < grace_ms {
        return;
    }
    let mint = ts_ms - opts.outage_tolerance.as_millis() as i64;
    for alert in state.active_mut() {
        let labels = alert
            .labels
            .with(model::METRIC_NAME, ALERTS_FOR_STATE_METRIC);
        let matchers: Result<Vec<Matcher>, _> = labels
            .iter()
            .map(|l| Matcher::new(MatchOp::Equal, &l.name, &l.value))
            .collect();
        let found = matchers
            .map_err(|e| e.to_string())
            .and_then(|m| store.select(mint, ts_ms, &m).map_err(|e| e.to_string()));
        let series = match found {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(rule = %rule.name, %error, "reading ALERTS_FOR_STATE failed");
                continue;
            }
        };
        // Matchers are exact on every label, so at most one series answers; its last real
        // sample is when the server went down and since when the alert was active.
        let Some(last) = series
            .iter()
            .filter(|s| s.labels == labels)
            .flat_map(|s| s.samples.iter())
            .filter(|s| !model::is_stale_nan(s.v))
            .max_by_key(|s| s.t)
        else {
            continue;
        };
        let down_at = last.t.div_euclid(1000) * 1000;
        let active_since = (last.v as i64) * 1000;
        let remaining = hold_ms - (down_at - active_since);
        alert.active_at = if remaining <= 0 {
            // It was firing when the server stopped; the next evaluation fires it again.
            active_since
        } else if remaining < grace_ms {
            ts_ms + grace_ms - hold_ms
        } else {
            active_since + (ts_ms - down_at)
        };
        tracing::debug!(rule = %rule.name, labels = %alert.labels, active_at = alert.active_at, "for state restored");
    }
}
