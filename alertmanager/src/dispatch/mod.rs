//! The dispatcher: routes each alert down the tree ([`route`]), puts it into the aggregation
//! group of every matching route ([`group`]), and runs one task per group that flushes it
//! through the notification pipeline on Alertmanager's timers.

pub(crate) mod group;
pub(crate) mod route;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_tests;

use crate::alert::Alert;
use crate::clock::Clock;
use crate::inhibit::Inhibitor;
use crate::notify::{FlushContext, Pipeline};
use crate::silence::Silences;
use crate::store::AlertStore;
use crate::timeinterval::TimeIntervals;
use chrono::{DateTime, Utc};
use group::AggrGroup;
use model::Labels;
use route::{RouteOpts, RouteTree};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The least time a flush's notifications get before they are cancelled.
const MIN_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Dispatcher {
    routes: RouteTree,
    pipeline: Pipeline,
    /// Groups by (route node, group labels).
    groups: Mutex<HashMap<(usize, Labels), Arc<AggrGroup>>>,
    mutes: Mutes,
    clock: Clock,
    external_url: String,
}

/// What a flush consults before the integrations: an inhibited or silenced alert is not
/// notified, and a route outside its active or inside its mute time intervals notifies
/// nothing (Alertmanager's inhibit, time-active, time-mute and silence stages).
#[derive(Debug)]
pub(crate) struct Mutes {
    pub silences: Arc<Silences>,
    pub inhibitor: Arc<Inhibitor>,
    /// The inhibitor's sources: every alert the Alertmanager holds, not only this group's.
    pub store: Arc<AlertStore>,
    /// The config's named time intervals.
    pub intervals: TimeIntervals,
}

impl Mutes {
    /// Why a route sends nothing at `now`, if it does not: Alertmanager's `TimeActiveStage`
    /// then `TimeMuteStage`. An unknown interval name is an error (config validation rules it
    /// out), which fails the flush as the stage's error does in Alertmanager.
    fn time_muted(
        &self,
        opts: &RouteOpts,
        now: DateTime<Utc>,
    ) -> Result<Option<&'static str>, String> {
        if !opts.active_time_intervals.is_empty()
            && !self
                .intervals
                .contains_any(&opts.active_time_intervals, now)?
        {
            return Ok(Some("route is not within active time"));
        }
        if self
            .intervals
            .contains_any(&opts.mute_time_intervals, now)?
        {
            return Ok(Some("route is within mute time"));
        }
        Ok(None)
    }
}

impl Dispatcher {
    pub fn new(
        routes: RouteTree,
        pipeline: Pipeline,
        mutes: Mutes,
        clock: Clock,
        external_url: String,
    ) -> Self {
        Dispatcher {
            routes,
            pipeline,
            groups: Mutex::new(HashMap::new()),
            mutes,
            clock,
            external_url,
        }
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<(usize, Labels), Arc<AggrGroup>>> {
        match self.groups.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The receivers of the routes `labels` match, in routing order, each once.
    pub fn receivers_for(&self, labels: &Labels) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for index in self.routes.match_labels(labels) {
            if let Some(node) = self.routes.node(index) {
                if !out.contains(&node.opts.receiver) {
                    out.push(node.opts.receiver.clone());
                }
            }
        }
        out
    }

    /// The aggregation groups `labels` falls into: per matching route, its node, receiver and
    /// group labels (the key the dispatcher groups by).
    pub fn groups_for(&self, labels: &Labels) -> Vec<(usize, String, Labels)> {
        self.routes
            .match_labels(labels)
            .into_iter()
            .filter_map(|index| {
                let node = self.routes.node(index)?;
                Some((
                    index,
                    node.opts.receiver.clone(),
                    node.opts.group_labels(labels),
                ))
            })
            .collect()
    }

    /// Routes `alert` into its groups, starting a task for each new group.
    pub fn dispatch(
        self: &Arc<Self>,
        alert: Alert,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        let now = self.clock.now();
        for route in self.routes.match_labels(&alert.labels) {
            let Some(node) = self.routes.node(route) else {
                continue;
            };
            let group_labels = node.opts.group_labels(&alert.labels);
            let mut groups = self.groups();
            let group = groups
                .entry((route, group_labels.clone()))
                .or_insert_with(|| {
                    let group =
                        Arc::new(AggrGroup::new(&node.key, group_labels, node.opts.clone()));
                    tracing::debug!(group_key = %group.key, "new aggregation group");
                    let me = Arc::clone(self);
                    let g = Arc::clone(&group);
                    let token = shutdown.clone();
                    tasks.spawn(async move { me.run_group(route, g, token).await });
                    group
                })
                .clone();
            // Inserting under the map lock: a group cannot be removed as empty in between.
            group.insert(alert.clone(), now);
        }
    }

    /// A group's life: wait `group_wait` (or an immediate flush), then flush every
    /// `group_interval` until the group is empty.
    async fn run_group(
        self: Arc<Self>,
        route: usize,
        group: Arc<AggrGroup>,
        shutdown: CancellationToken,
    ) {
        let mut next = Instant::now() + group.opts.group_wait;
        loop {
            let requested = tokio::select! {
                _ = tokio::time::sleep_until(next) => false,
                _ = group.flush_now.notified() => true,
                _ = shutdown.cancelled() => return,
            };
            if !group.begin_flush(requested) {
                continue;
            }
            next = Instant::now() + group.opts.group_interval;
            // Shutdown does not wait for a flush stuck retrying an unreachable receiver; an
            // interrupted notification is not logged, so it is sent again (at least once).
            tokio::select! {
                _ = self.flush(&group) => {}
                _ = shutdown.cancelled() => return,
            }
            if self.remove_if_empty(route, &group) {
                tracing::debug!(group_key = %group.key, "aggregation group empty, removed");
                return;
            }
        }
    }

    async fn flush(&self, group: &AggrGroup) {
        let now = self.clock.now();
        let mut snapshot = group.snapshot(now);
        if snapshot.alerts.is_empty() {
            return;
        }
        // A route muted by its time intervals drops the whole flush. As in Alertmanager the
        // flush still succeeds: resolved alerts leave the group unannounced, and the
        // notification log is untouched, so firing alerts are sent at the first flush after
        // the mute ends.
        match self.mutes.time_muted(&group.opts, now) {
            Ok(None) => {}
            Ok(Some(reason)) => {
                tracing::debug!(group_key = %group.key, reason, "notifications not sent");
                group.delete_resolved(&snapshot.resolved);
                return;
            }
            Err(error) => {
                tracing::error!(group_key = %group.key, %error, "time interval check failed; retrying at the next group interval");
                return;
            }
        }
        // Inhibited and silenced alerts, firing or resolved, are dropped before the
        // integrations see them. A flush left with nothing to send succeeds, as Alertmanager's
        // stages end early on an empty list: resolved alerts still leave the group and the
        // notification log is kept. The inhibitor's sources are read once per flush.
        let sources = if self.mutes.inhibitor.is_empty() {
            Vec::new()
        } else {
            self.mutes.store.unresolved(now)
        };
        snapshot.alerts.retain(|a| {
            self.mutes
                .inhibitor
                .inhibited_by(&a.labels, &sources, now)
                .is_none()
                && self.mutes.silences.silenced_by(&a.labels, now).is_empty()
        });
        if snapshot.alerts.is_empty() {
            group.delete_resolved(&snapshot.resolved);
            return;
        }
        let span = tracing::debug_span!("flush", group_key = %group.key, receiver = %group.opts.receiver, alerts = snapshot.alerts.len());
        let _enter = span.enter();
        let ctx = Arc::new(FlushContext {
            receiver: group.opts.receiver.clone(),
            group_key: group.key.clone(),
            group_labels: group.labels.clone(),
            external_url: self.external_url.clone(),
            repeat_interval: group.opts.repeat_interval,
        });
        let timeout = group.opts.group_interval.max(MIN_FLUSH_TIMEOUT);
        let exec = self.pipeline.exec(ctx, Arc::new(snapshot.alerts), now);
        let ok = match tokio::time::timeout(timeout, exec).await {
            Ok(ok) => ok,
            Err(_) => {
                tracing::error!(
                    ?timeout,
                    "notification pipeline timed out; retrying at the next group interval"
                );
                false
            }
        };
        if ok {
            group.delete_resolved(&snapshot.resolved);
        }
    }

    fn remove_if_empty(&self, route: usize, group: &Arc<AggrGroup>) -> bool {
        let mut groups = self.groups();
        if !group.is_empty() {
            return false;
        }
        groups.remove(&(route, group.labels.clone()));
        true
    }

    /// Group keys and alert counts, for tests and later for `/api/v2/alerts/groups`.
    #[cfg(test)]
    pub fn group_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.groups().values().map(|g| g.key.clone()).collect();
        keys.sort();
        keys
    }
}
