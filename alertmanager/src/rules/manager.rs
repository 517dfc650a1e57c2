//! The rule manager: owns every group's rule state, evaluates groups on their interval (at
//! the phase Prometheus gives the same group: its label hash modulo the interval) and hands
//! due alerts to an [`AlertSink`].
//! Each rule's expression goes to the engine of its language: PromQL through the manager's
//! [`QueryFn`], LogQL through a second one given with [`RuleManager::with_log_query`].

use super::eval::{ActiveAlert, AlertingState, EvalContext, RecordingState};
use super::file::{Rule, RuleGroup};
use super::lang::QueryLanguage;
use super::restore::{restore_for_state, ForRestoreOptions};
use super::status::{GroupHealth, GroupStatus, RuleStatus};
use super::QueryFn;
use crate::alert::PostableAlert;
use crate::clock::Clock;
use crate::goformat::query_escape;
use chrono::{TimeZone, Utc};
use model::{Appender, Labels, Querier, Sample, Series, STALE_NAN_BITS};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Prometheus's `global.evaluation_interval` default.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus's `--rules.alert.resend-delay` default.
pub const DEFAULT_RESEND_DELAY: Duration = Duration::from_secs(60);
/// Prometheus restores `for` state after a group's second evaluation, not its first.
const EVALS_BEFORE_RESTORE: u8 = 2;

/// Locks `m`, also when a panic poisoned it: the state stays usable, as a rule that panicked
/// mid-evaluation is reported and evaluated again at the next tick.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where evaluated alerts go: the in-process Alertmanager, or later a remote one.
pub trait AlertSink: Send + Sync {
    /// Delivers alerts that are firing or recently resolved; must not block for long.
    fn send(&self, alerts: Vec<PostableAlert>);
}

/// Settings the rule manager takes from the server's flags and config.
#[derive(Clone, Debug)]
pub struct RuleManagerOptions {
    /// The interval of groups that set none (`global.evaluation_interval`, default 1m).
    pub evaluation_interval: Duration,
    /// The server's external URL, used in `generatorURL` and `$externalURL`.
    pub external_url: String,
    /// Minimum time between two sends of an unchanged firing alert (default 1m).
    pub resend_delay: Duration,
    /// `global.external_labels`: visible to templates, and added to sent alerts that lack them.
    pub external_labels: Labels,
}

impl Default for RuleManagerOptions {
    fn default() -> Self {
        RuleManagerOptions {
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            external_url: String::new(),
            resend_delay: DEFAULT_RESEND_DELAY,
            external_labels: Labels::empty(),
        }
    }
}

enum RuleState {
    Alerting(AlertingState),
    Recording(RecordingState),
}

impl RuleState {
    /// The series the rule wrote at its last evaluation.
    fn written(&self) -> Vec<Labels> {
        match self {
            RuleState::Alerting(s) => s.written().cloned().collect(),
            RuleState::Recording(s) => s.written().cloned().collect(),
        }
    }
}

struct GroupRuntime {
    def: RuleGroup,
    interval: Duration,
    state: Mutex<Vec<RuleState>>,
    /// Each rule's language, in rule order; all PromQL unless a log query engine is given.
    languages: Vec<QueryLanguage>,
    /// How the last evaluation went, for `/api/v1/rules`.
    health: Mutex<GroupHealth>,
    /// Evaluations left before the `for` state is restored (when restoring is on): as in
    /// Prometheus, it is restored after the second, so recording rules have had a round.
    evals_before_restore: AtomicU8,
}

/// Evaluates rule groups and sends their alerts.
pub struct RuleManager {
    groups: Vec<GroupRuntime>,
    query: QueryFn,
    /// The LogQL engine, for rules whose expression is LogQL.
    log_query: Option<QueryFn>,
    appender: Arc<dyn Appender>,
    sink: Arc<dyn AlertSink>,
    opts: RuleManagerOptions,
    clock: Clock,
    /// Where `ALERTS_FOR_STATE` is read back from on startup, and how.
    restore: Option<(Arc<dyn Querier>, ForRestoreOptions)>,
}

impl std::fmt::Debug for RuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleManager")
            .field(
                "groups",
                &self.groups.iter().map(|g| &g.def.name).collect::<Vec<_>>(),
            )
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl RuleManager {
    pub fn new(
        groups: Vec<RuleGroup>,
        query: QueryFn,
        appender: Arc<dyn Appender>,
        sink: Arc<dyn AlertSink>,
        opts: RuleManagerOptions,
    ) -> Self {
        let groups = groups
            .into_iter()
            .map(|def| {
                let state = def
                    .rules
                    .iter()
                    .map(|r| match r {
                        Rule::Alerting(_) => RuleState::Alerting(AlertingState::default()),
                        Rule::Recording(_) => RuleState::Recording(RecordingState::default()),
                    })
                    .collect();
                GroupRuntime {
                    interval: def.interval.unwrap_or(opts.evaluation_interval),
                    languages: vec![QueryLanguage::PromQL; def.rules.len()],
                    health: Mutex::new(GroupHealth::new(def.rules.len())),
                    def,
                    state: Mutex::new(state),
                    evals_before_restore: AtomicU8::new(EVALS_BEFORE_RESTORE),
                }
            })
            .collect();
        RuleManager {
            groups,
            query,
            log_query: None,
            appender,
            sink,
            opts,
            clock: Clock::new(),
            restore: None,
        }
    }

    /// Restores each group's `for` state from the `ALERTS_FOR_STATE` series in `store` right
    /// after its second evaluation (Prometheus's behaviour on startup). Until then the group
    /// writes no `ALERTS`/`ALERTS_FOR_STATE` samples, so the lookup sees only the previous
    /// run's.
    pub fn with_for_restore(mut self, store: Arc<dyn Querier>, opts: ForRestoreOptions) -> Self {
        self.restore = Some((store, opts));
        self
    }

    /// Evaluates the rules `language` says are LogQL through `query` (the log store's instant
    /// metric queries), the rest through the PromQL engine as before. Their templates' `query`
    /// function runs in the rule's language too, as in Loki's ruler.
    pub fn with_log_query(
        mut self,
        query: QueryFn,
        language: impl Fn(&str) -> QueryLanguage,
    ) -> Self {
        for g in &mut self.groups {
            g.languages = g.def.rules.iter().map(|r| language(r.expr())).collect();
        }
        self.log_query = Some(query);
        self
    }

    /// Takes over the state of `old`'s rules, as Prometheus does when it reloads rule files
    /// (`Group.CopyState`): a group with the same file and name keeps its last evaluation,
    /// and each of its rules takes the state (pending and firing alerts, the series written
    /// last time) of the first unclaimed old rule with the same kind, name and labels. So an
    /// alert keeps its `activeAt` across a reload, and a changed expression starts from the
    /// alerts it already had. `old` must have stopped evaluating; its states are moved out.
    ///
    /// The series written last by an old rule that nothing took over (a rule or group the
    /// reload removed or changed) get a staleness marker now, as Prometheus marks them, so
    /// they leave instant queries at once instead of after the lookback delta.
    pub fn take_state_from(&self, old: &RuleManager) {
        let mut gone: Vec<Labels> = Vec::new();
        for old_group in &old.groups {
            let new_group = self
                .groups
                .iter()
                .find(|g| g.def.name == old_group.def.name && g.def.file == old_group.def.file);
            let Some(new_group) = new_group else {
                gone.extend(lock(&old_group.state).iter().flat_map(RuleState::written));
                continue;
            };
            let mut old_states = lock(&old_group.state);
            let mut new_states = lock(&new_group.state);
            let mut claimed = vec![false; old_group.def.rules.len()];
            for (rule, state) in new_group.def.rules.iter().zip(new_states.iter_mut()) {
                let same = |i: &usize| {
                    let o = &old_group.def.rules[*i];
                    !claimed[*i]
                        && std::mem::discriminant(o) == std::mem::discriminant(rule)
                        && o.name() == rule.name()
                        && o.labels() == rule.labels()
                };
                if let Some(i) = (0..old_group.def.rules.len()).find(same) {
                    claimed[i] = true;
                    if let Some(old_state) = old_states.get_mut(i) {
                        std::mem::swap(state, old_state);
                    }
                }
            }
            for (state, taken) in old_states.iter().zip(&claimed) {
                if !taken {
                    gone.extend(state.written());
                }
            }
            let old_health = lock(&old_group.health);
            let mut new_health = lock(&new_group.health);
            new_health.last_evaluation_ms = old_health.last_evaluation_ms;
            new_health.evaluation_seconds = old_health.evaluation_seconds;
        }
        if gone.is_empty() {
            return;
        }
        let t = self.clock.now_ms();
        let stale: Vec<Series> = gone
            .into_iter()
            .map(|labels| Series {
                labels,
                samples: vec![Sample {
                    t,
                    v: f64::from_bits(STALE_NAN_BITS),
                }],
            })
            .collect();
        if let Err(error) = self.appender.append(&stale) {
            tracing::warn!(%error, series = stale.len(), "writing staleness markers for removed rules failed");
        }
    }

    /// The language each rule of group `group` is evaluated in, in rule order.
    pub fn rule_languages(&self, group: usize) -> &[QueryLanguage] {
        self.groups.get(group).map_or(&[], |g| &g.languages)
    }

    /// The groups, in load order; `eval_group_at` takes an index into this.
    pub fn groups(&self) -> impl Iterator<Item = &RuleGroup> {
        self.groups.iter().map(|g| &g.def)
    }

    /// Evaluates every group on its interval until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        for index in 0..self.groups.len() {
            let me = Arc::clone(&self);
            let token = shutdown.clone();
            tracker.spawn(async move { me.run_group(index, token).await });
        }
        tracker.close();
        tracker.wait().await;
    }

    async fn run_group(self: Arc<Self>, index: usize, shutdown: CancellationToken) {
        let Some(group) = self.groups.get(index) else {
            return;
        };
        let interval_ms = (group.interval.as_millis() as i64).max(1);
        let offset_ms = eval_offset_ms(&group.def, group.interval);
        // The first evaluation lands on the group's phase, so restarts keep the same timestamps.
        let now = self.clock.now_ms();
        let next = aligned_eval_time(now, interval_ms, offset_ms) + interval_ms;
        let start = tokio::time::Instant::now() + Duration::from_millis((next - now).max(0) as u64);
        let mut ticker = tokio::time::interval_at(start, group.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let ts = aligned_eval_time(self.clock.now_ms(), interval_ms, offset_ms);
            let me = Arc::clone(&self);
            // Queries are synchronous and may be slow: keep them off the async workers. A
            // restore happens at the wall time after the evaluation, as in Prometheus.
            let eval = move || me.eval_group(index, ts, &|| me.clock.now_ms());
            if let Err(err) = tokio::task::spawn_blocking(eval).await {
                tracing::error!(group = %group.def.name, error = %err, "rule group evaluation panicked");
            }
        }
    }

    /// Evaluates group `group` once at `now_ms`: every rule in order, at the same timestamp,
    /// then sends the alerts that are due. The second evaluation after startup restores the
    /// `for` state as of `now_ms`.
    pub fn eval_group_at(&self, group: usize, now_ms: i64) {
        self.eval_group(group, now_ms, &|| now_ms);
    }

    /// [`Self::eval_group_at`], restoring the `for` state (when due) as of `restore_at()`.
    fn eval_group(&self, group: usize, now_ms: i64, restore_at: &dyn Fn() -> i64) {
        let Some(g) = self.groups.get(group) else {
            tracing::warn!(group, "no such rule group");
            return;
        };
        let span = tracing::debug_span!("rule_group_eval", group = %g.def.name, file = %g.def.file, ts = now_ms);
        let _enter = span.enter();
        let context = |query| EvalContext {
            ts_ms: now_ms,
            query_ts_ms: now_ms - g.def.query_offset.as_millis() as i64,
            query,
            external_labels: &self.opts.external_labels,
            external_url: &self.opts.external_url,
            limit: g.def.limit,
        };
        let promql_ctx = context(&self.query);
        let logql_ctx = self.log_query.as_ref().map(context);
        let resend_ms = self.opts.resend_delay.as_millis() as i64;
        let interval_ms = g.interval.as_millis() as i64;
        let mut to_send = Vec::new();
        // Counts down to 0 and stays there; `before` is the count before this evaluation.
        let before = g
            .evals_before_restore
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .unwrap_or(0);
        let restoring = self.restore.is_some() && before > 0;
        {
            let mut states = lock(&g.state);
            let group_began = std::time::Instant::now();
            let mut outcomes = Vec::with_capacity(states.len());
            for ((rule, state), language) in
                g.def.rules.iter().zip(states.iter_mut()).zip(&g.languages)
            {
                let ctx = match (language, &logql_ctx) {
                    (QueryLanguage::LogQL, Some(logql)) => logql,
                    _ => &promql_ctx,
                };
                let began = std::time::Instant::now();
                let result = match (rule, state) {
                    (Rule::Alerting(r), RuleState::Alerting(s)) => match s.eval(r, ctx) {
                        Ok(()) => {
                            to_send.extend(
                                s.take_due(now_ms, resend_ms, interval_ms)
                                    .into_iter()
                                    .map(|a| self.postable(&r.expr, a)),
                            );
                            // As in Prometheus, a failed write of the state series is logged
                            // and does not fail the rule.
                            let series = if restoring {
                                Vec::new()
                            } else {
                                s.state_series(promql_ctx.query_ts_ms)
                            };
                            if !series.is_empty() {
                                if let Err(error) = self.appender.append(&series) {
                                    tracing::warn!(rule = %r.name, %error, "writing ALERTS series failed");
                                }
                            }
                            Ok(())
                        }
                        Err(error) => {
                            tracing::warn!(rule = %r.name, %error, "alerting rule evaluation failed");
                            Err(error)
                        }
                    },
                    (Rule::Recording(r), RuleState::Recording(s)) => {
                        s.eval(r, ctx, self.appender.as_ref()).map(|_| ()).inspect_err(|error| {
                            tracing::warn!(rule = %r.name, %error, "recording rule evaluation failed");
                        })
                    }
                    // States are built from the rules in `new`, so kinds always line up.
                    _ => Ok(()),
                };
                outcomes.push((result, began.elapsed().as_secs_f64()));
            }
            if let (true, Some((store, opts))) = (restoring && before == 1, &self.restore) {
                let ts = restore_at();
                for (rule, state) in g.def.rules.iter().zip(states.iter_mut()) {
                    if let (Rule::Alerting(r), RuleState::Alerting(s)) = (rule, state) {
                        restore_for_state(s, r, store.as_ref(), ts, *opts);
                    }
                }
            }
            let mut health = lock(&g.health);
            health.record(now_ms, group_began.elapsed().as_secs_f64(), outcomes);
        }
        if !to_send.is_empty() {
            self.sink.send(to_send);
        }
    }

    /// Every group with its rules' health and alerts, as `/api/v1/rules` reports them.
    pub fn group_statuses(&self) -> Vec<GroupStatus> {
        self.groups
            .iter()
            .map(|g| {
                let health = match g.health.lock() {
                    Ok(h) => h.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                let states = lock(&g.state);
                let rules = g
                    .def
                    .rules
                    .iter()
                    .zip(states.iter())
                    .zip(health.rules)
                    .map(|((rule, state), h)| RuleStatus {
                        rule: rule.clone(),
                        health: h.health,
                        last_error: h.last_error,
                        last_evaluation_ms: health.last_evaluation_ms,
                        evaluation_seconds: h.evaluation_seconds,
                        alerts: match (rule, state) {
                            (Rule::Alerting(r), RuleState::Alerting(s)) => {
                                s.active(&r.name).collect()
                            }
                            _ => Vec::new(),
                        },
                    })
                    .collect();
                GroupStatus {
                    name: g.def.name.clone(),
                    file: g.def.file.clone(),
                    interval: g.interval,
                    limit: g.def.limit,
                    last_evaluation_ms: health.last_evaluation_ms,
                    evaluation_seconds: health.evaluation_seconds,
                    rules,
                }
            })
            .collect()
    }

    /// Pending and firing alerts of every alerting rule.
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        let mut out = Vec::new();
        for g in &self.groups {
            let states = lock(&g.state);
            for (rule, state) in g.def.rules.iter().zip(states.iter()) {
                if let (Rule::Alerting(r), RuleState::Alerting(s)) = (rule, state) {
                    out.extend(s.active(&r.name));
                }
            }
        }
        out
    }

    /// Prometheus's `SendAlerts` conversion: starts at FiredAt, ends at ResolvedAt or
    /// ValidUntil, external labels added where the alert lacks them.
    fn postable(&self, expr: &str, a: super::eval::AlertInstance) -> PostableAlert {
        let time = |ms: i64| Utc.timestamp_millis_opt(ms).single();
        let mut labels = a.labels;
        for l in &self.opts.external_labels {
            if labels.get(&l.name).is_none() {
                labels = labels.with(&l.name, &l.value);
            }
        }
        PostableAlert {
            labels,
            annotations: a.annotations,
            starts_at: a.fired_at.and_then(time),
            ends_at: time(a.resolved_at.unwrap_or(a.valid_until)),
            generator_url: format!(
                "{}/graph?g0.expr={}&g0.tab=1",
                self.opts.external_url,
                query_escape(expr)
            ),
        }
    }
}

/// Prometheus's `EvalTimestamp`: the latest slot `base + offset` not after `now`.
fn aligned_eval_time(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    let adjusted = now_ms - offset_ms;
    adjusted - adjusted.rem_euclid(interval_ms) + offset_ms
}

/// Where in each interval the group is evaluated, in milliseconds: Prometheus's
/// `Group.EvalTimestamp` offset, the hash of the label set `{file, name}` modulo the interval
/// in nanoseconds. Evaluation times are whole milliseconds, so the sub-millisecond rest of
/// the offset never shows.
pub(crate) fn eval_offset_ms(g: &RuleGroup, interval: Duration) -> i64 {
    let interval_ns = (interval.as_nanos().min(u128::from(u64::MAX)) as u64).max(1);
    // Sorted by name, as Go's `labels.New` leaves them; empty values are hashed, not dropped.
    let hash = model::label_pairs_hash([("file", g.file.as_str()), ("name", g.name.as_str())]);
    ((hash % interval_ns) / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_time_is_aligned_to_the_group_phase() {
        assert_eq!(aligned_eval_time(10_500, 1_000, 568), 10_568 - 1_000);
        assert_eq!(aligned_eval_time(10_568, 1_000, 568), 10_568);
        assert_eq!(aligned_eval_time(60_000, 60_000, 0), 60_000);
    }

    /// The phases a running Prometheus 2.42 gave these groups (`lastEvaluation` in
    /// `/api/v1/rules`: 01:26:58.6335 for `diff` every 1s, 01:26:55.8889 for `restore` every
    /// 7s, i.e. 5.886 s into a 7 s slot), from `rule_files: ['/tmp/alerting-phase/rules.yml']`.
    #[test]
    fn eval_offset_is_the_phase_prometheus_gives_the_group() {
        let text = "groups:
  - name: diff
    rules: [{record: x, expr: vector(1)}]
  - name: restore
    interval: 7s
    rules: [{record: y, expr: vector(1)}]
";
        let groups = super::super::parse_rule_file(text, "/tmp/alerting-phase/rules.yml").unwrap();
        assert_eq!(eval_offset_ms(&groups[0], Duration::from_secs(1)), 633);
        assert_eq!(eval_offset_ms(&groups[1], Duration::from_secs(7)), 5886);
        // The same group elsewhere, or renamed, lands elsewhere in the interval.
        let moved = super::super::parse_rule_file(text, "/etc/rules.yml").unwrap();
        assert_ne!(eval_offset_ms(&moved[0], Duration::from_secs(1)), 633);
    }
}
