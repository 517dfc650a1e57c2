//! An aggregation group: the alerts one route groups under one set of group labels, and the
//! timing state of Alertmanager's `aggrGroup` (first flush after `group_wait`, or at once for an
//! alert that is already older than that; then one flush per `group_interval`).

use super::route::{label_set_string, RouteOpts};
use crate::alert::{alert_order, Alert};
use crate::notify::NotifyAlert;
use chrono::{DateTime, Utc};
use model::Labels;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct GroupState {
    alerts: BTreeMap<u64, Alert>,
    has_flushed: bool,
    /// Set with `flush_now`, so a stale wake-up can be told apart from a real request.
    flush_requested: bool,
}

#[derive(Debug)]
pub(crate) struct AggrGroup {
    /// `routeKey:{group labels}`, the key of the notification log and the webhook's groupKey.
    pub key: String,
    pub labels: Labels,
    pub opts: RouteOpts,
    state: Mutex<GroupState>,
    /// Wakes the group's task for an immediate first flush.
    pub flush_now: Notify,
}

/// A flush's view of the group: sorted alerts, and the resolved ones with the version that
/// was sent, so they can be removed afterwards unless they changed meanwhile.
pub(crate) struct Snapshot {
    pub alerts: Vec<NotifyAlert>,
    pub resolved: Vec<(u64, DateTime<Utc>)>,
}

impl AggrGroup {
    pub fn new(route_key: &str, labels: Labels, opts: RouteOpts) -> AggrGroup {
        AggrGroup {
            key: format!("{route_key}:{}", label_set_string(&labels)),
            labels,
            opts,
            state: Mutex::new(GroupState::default()),
            flush_now: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds or replaces an alert. Before the first flush, an alert that started more than
    /// `group_wait` ago triggers the flush at once: waiting would only delay old news.
    pub fn insert(&self, alert: Alert, now: DateTime<Utc>) {
        let mut s = self.lock();
        let wait =
            chrono::Duration::from_std(self.opts.group_wait).unwrap_or(chrono::Duration::MAX);
        let overdue = alert
            .starts_at
            .checked_add_signed(wait)
            .is_some_and(|t| t < now);
        if !s.has_flushed && overdue && !s.flush_requested {
            s.flush_requested = true;
            self.flush_now.notify_one();
        }
        s.alerts.insert(alert.fingerprint, alert);
    }

    /// Called when the group's timer or an immediate flush wakes it. Returns false for a stale
    /// wake-up (a flush request that a timer flush already served).
    pub fn begin_flush(&self, requested: bool) -> bool {
        let mut s = self.lock();
        if requested && !s.flush_requested {
            return false;
        }
        s.flush_requested = false;
        s.has_flushed = true;
        true
    }

    /// The alerts to notify, sorted as Alertmanager sorts them, with `endsAt` cleared for
    /// alerts that have not ended by `now` so they never look resolved downstream.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Snapshot {
        let s = self.lock();
        let mut alerts = Vec::with_capacity(s.alerts.len());
        let mut resolved = Vec::new();
        for a in s.alerts.values() {
            let is_resolved = a.resolved_at(now);
            if is_resolved {
                resolved.push((a.fingerprint, a.updated_at));
            }
            alerts.push(NotifyAlert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.starts_at,
                ends_at: is_resolved.then_some(a.ends_at),
                generator_url: a.generator_url.clone(),
                fingerprint: a.fingerprint,
            });
        }
        alerts.sort_by(|a, b| alert_order(&a.labels, &b.labels));
        Snapshot { alerts, resolved }
    }

    /// After a successful flush: forgets the resolved alerts that were notified, unless they
    /// were updated since the snapshot.
    pub fn delete_resolved(&self, resolved: &[(u64, DateTime<Utc>)]) {
        let mut s = self.lock();
        for (fp, updated_at) in resolved {
            if s.alerts
                .get(fp)
                .is_some_and(|a| a.updated_at == *updated_at)
            {
                s.alerts.remove(fp);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().alerts.is_empty()
    }
}
