//! The in-process Alertmanager: takes posted alerts into the store, feeds them to the
//! dispatcher, keeps the silences, and runs the dispatcher and its housekeeping until shutdown.

use crate::alert::{fingerprint_hex, Alert, PostableAlert};
use crate::clock::Clock;
use crate::config::AlertmanagerConfig;
use crate::dispatch::route::RouteTree;
use crate::dispatch::{Dispatcher, Mutes};
use crate::inhibit::Inhibitor;
use crate::notify::{NotificationLog, Pipeline};
use crate::rules::AlertSink;
use crate::silence::{PostableSilence, Silence, SilenceError, SilenceState, Silences};
use crate::store::AlertStore;
use crate::view::{AlertGroupView, AlertView, AlertViewState};
use model::Labels;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often ended alerts, expired notification-log entries and silences past their retention
/// are dropped (Alertmanager's `--alerts.gc-interval`).
pub const GC_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// Settings the Alertmanager takes from the server's flags.
#[derive(Clone, Debug, Default)]
pub struct AlertmanagerOptions {
    /// The URL this Alertmanager is reached at; sent as `externalURL` in notifications.
    pub external_url: String,
    /// Where silences (`silences.json`) and the notification log (`nflog.json`) are kept, each
    /// rewritten on every change. `None` keeps them in memory only, lost at exit. The directory
    /// is created when missing.
    pub data_dir: Option<PathBuf>,
}

/// What the config decides: routes, receivers, inhibition and time intervals. A reload puts a
/// new one in place whole; alerts, silences and the notification log stay.
#[derive(Debug)]
struct Routing {
    config: Arc<AlertmanagerConfig>,
    dispatcher: Arc<Dispatcher>,
    inhibitor: Arc<Inhibitor>,
    /// Ends this routing's aggregation-group timers when a reload replaces it.
    stop: CancellationToken,
}

/// Builds the notification pipeline for a config: the real integrations, or a recorder in tests.
type PipelineFn = Box<dyn Fn(&AlertmanagerConfig) -> Pipeline + Send + Sync>;

/// What every routing shares, and a reload keeps.
struct Kept {
    make_pipeline: PipelineFn,
    nflog: Arc<NotificationLog>,
    external_url: String,
    store: Arc<AlertStore>,
    silences: Arc<Silences>,
    clock: Clock,
    /// Cancelled at shutdown; each routing's `stop` derives from it.
    root: CancellationToken,
}

impl Kept {
    /// The routing for `config`, sharing the alerts, silences and notification log.
    fn routing(&self, config: AlertmanagerConfig) -> Routing {
        let unapplied = config.unapplied_sections();
        if !unapplied.is_empty() {
            tracing::warn!(sections = ?unapplied, "alertmanager config sections are accepted but not applied yet");
        }
        let routes = RouteTree::build(&config).unwrap_or_else(|error| {
            // `AlertmanagerConfig::parse` validates the same things, so this only happens for a
            // config assembled by hand; route everything to nothing rather than panic.
            tracing::error!(%error, "invalid routing tree; no alert will be routed");
            RouteTree::empty()
        });
        let inhibitor = Arc::new(
            Inhibitor::new(&config.inhibit_rules).unwrap_or_else(|error| {
                // Validated by `AlertmanagerConfig::parse` too; see the routing tree above.
                tracing::error!(%error, "invalid inhibit rules; nothing will be inhibited");
                Inhibitor::default()
            }),
        );
        let intervals = config.time_interval_set().unwrap_or_else(|error| {
            // Validated by `AlertmanagerConfig::parse` too; see the routing tree above. A
            // route naming an interval that is missing then fails its flushes, loudly.
            tracing::error!(%error, "invalid time intervals; routes using them will not notify");
            Default::default()
        });
        let mutes = Mutes {
            silences: Arc::clone(&self.silences),
            inhibitor: Arc::clone(&inhibitor),
            store: Arc::clone(&self.store),
            intervals,
        };
        let dispatcher = Arc::new(Dispatcher::new(
            routes,
            (self.make_pipeline)(&config).with_nflog(Arc::clone(&self.nflog)),
            mutes,
            self.clock,
            self.external_url.clone(),
        ));
        Routing {
            config: Arc::new(config),
            dispatcher,
            inhibitor,
            stop: self.root.child_token(),
        }
    }
}

/// Routes, groups and notifies alerts as Alertmanager 0.25 does.
pub struct Alertmanager {
    routing: RwLock<Arc<Routing>>,
    kept: Kept,
    incoming: mpsc::UnboundedSender<Alert>,
    started_at: chrono::DateTime<chrono::Utc>,
    /// Taken by `run`; alerts posted before it starts wait in the channel.
    pending: Mutex<Option<mpsc::UnboundedReceiver<Alert>>>,
    /// The groups' timers of every routing, so `run` waits for them all at shutdown.
    tasks: TaskTracker,
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager")
            .field("routing", &self.routing())
            .finish_non_exhaustive()
    }
}

impl Alertmanager {
    /// Builds the Alertmanager for a validated config.
    pub fn new(config: AlertmanagerConfig, opts: AlertmanagerOptions) -> Self {
        Self::with_pipeline(config, opts, Pipeline::build, Clock::new())
    }

    /// Tests choose the pipeline (a recorder) and the wall time the clock starts at.
    pub(crate) fn with_pipeline(
        config: AlertmanagerConfig,
        opts: AlertmanagerOptions,
        pipeline: impl Fn(&AlertmanagerConfig) -> Pipeline + Send + Sync + 'static,
        clock: Clock,
    ) -> Self {
        let (incoming, pending) = mpsc::unbounded_channel();
        let kept = Kept {
            make_pipeline: Box::new(pipeline),
            nflog: Arc::new(NotificationLog::open_or_empty(opts.data_dir.as_deref())),
            external_url: opts.external_url,
            store: Arc::new(AlertStore::default()),
            silences: Arc::new(Silences::open_or_empty(opts.data_dir.as_deref())),
            clock,
            root: CancellationToken::new(),
        };
        Alertmanager {
            routing: RwLock::new(Arc::new(kept.routing(config))),
            kept,
            incoming,
            started_at: clock.now(),
            pending: Mutex::new(Some(pending)),
            tasks: TaskTracker::new(),
        }
    }

    fn routing(&self) -> Arc<Routing> {
        Arc::clone(&self.routing.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a new, validated config in service, as Alertmanager's reload does: the old
    /// aggregation groups stop, every alert still kept is routed again through the new tree
    /// (so changed routes, receivers, grouping and inhibition apply to them), and the
    /// notification log keeps what was already sent from going out again. Silences and
    /// alerts are kept.
    pub fn reload(&self, config: AlertmanagerConfig) {
        let new = Arc::new(self.kept.routing(config));
        let old = std::mem::replace(
            &mut *self.routing.write().unwrap_or_else(PoisonError::into_inner),
            Arc::clone(&new),
        );
        old.stop.cancel();
        for alert in self.kept.store.all() {
            new.dispatcher.dispatch(alert, &self.tasks, &new.stop);
        }
        tracing::info!("alertmanager configuration reloaded");
    }

    /// The Alertmanager's notion of now (wall time that follows tokio's clock).
    #[cfg(test)]
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.kept.clock.now()
    }

    /// The keys of the live aggregation groups.
    #[cfg(test)]
    pub(crate) fn group_keys(&self) -> Vec<String> {
        self.routing().dispatcher.group_keys()
    }

    /// The config in service.
    pub fn config(&self) -> Arc<AlertmanagerConfig> {
        Arc::clone(&self.routing().config)
    }

    /// Accepts alerts as `POST /api/v2/alerts` does: missing times filled in, every valid
    /// alert stored and handed to the dispatcher, and the reasons the invalid ones were
    /// refused returned (empty when all were accepted).
    pub fn put_alerts(&self, alerts: Vec<PostableAlert>) -> Vec<String> {
        let now = self.kept.clock.now();
        let resolve_timeout = self.routing().config.global.resolve_timeout();
        let mut refused = Vec::new();
        for posted in alerts {
            let labels = posted.labels.to_string();
            match self.kept.store.put(posted, now, resolve_timeout) {
                Ok(alert) => {
                    if self.incoming.send(alert).is_err() {
                        tracing::warn!("alertmanager has stopped; alert dropped");
                    }
                }
                Err(error) => {
                    tracing::warn!(%labels, %error, "invalid alert dropped");
                    refused.push(format!("{labels}: {error}"));
                }
            }
        }
        refused
    }

    /// The alerts that have not ended, by fingerprint, as `GET /api/v2/alerts` lists them.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = self.kept.clock.now();
        let routing = self.routing();
        let alerts = self.kept.store.unresolved(now);
        alerts
            .iter()
            .cloned()
            .map(|a| {
                let silenced_by = self.kept.silences.silenced_by(&a.labels, now);
                let inhibited_by: Vec<String> = routing
                    .inhibitor
                    .inhibited_by(&a.labels, &alerts, now)
                    .map(fingerprint_hex)
                    .into_iter()
                    .collect();
                AlertView {
                    receivers: routing.dispatcher.receivers_for(&a.labels),
                    state: if silenced_by.is_empty() && inhibited_by.is_empty() {
                        AlertViewState::Active
                    } else {
                        AlertViewState::Suppressed
                    },
                    silenced_by,
                    inhibited_by,
                    labels: a.labels,
                    annotations: a.annotations,
                    starts_at: a.starts_at,
                    ends_at: a.ends_at,
                    updated_at: a.updated_at,
                    generator_url: a.generator_url,
                    fingerprint: a.fingerprint,
                }
            })
            .collect()
    }

    /// The alerts that have not ended, in the aggregation groups the router puts them in, as
    /// `GET /api/v2/alerts/groups` lists them: only alerts `keep` accepts, only receivers
    /// `receiver` accepts, no empty group; groups ordered by labels then receiver.
    pub fn alert_groups(
        &self,
        keep: impl Fn(&AlertView) -> bool,
        receiver: impl Fn(&str) -> bool,
    ) -> Vec<AlertGroupView> {
        let mut groups: std::collections::BTreeMap<(Labels, String, usize), Vec<AlertView>> =
            std::collections::BTreeMap::new();
        let routing = self.routing();
        for view in self.alerts().into_iter().filter(|v| keep(v)) {
            for (node, name, labels) in routing.dispatcher.groups_for(&view.labels) {
                if receiver(&name) {
                    groups
                        .entry((labels, name, node))
                        .or_default()
                        .push(view.clone());
                }
            }
        }
        let mut out: Vec<AlertGroupView> = groups
            .into_iter()
            .map(|((labels, receiver, _), mut alerts)| {
                alerts.sort_by(crate::view::alert_order);
                AlertGroupView {
                    labels,
                    receiver,
                    alerts,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            crate::view::label_set_order(&a.labels, &b.labels)
                .then_with(|| a.receiver.cmp(&b.receiver))
        });
        out
    }

    /// Creates or updates a silence as `POST /api/v2/silences` does (see
    /// [`PostableSilence`]); returns the id of the silence now in force.
    pub fn set_silence(&self, silence: PostableSilence) -> Result<String, SilenceError> {
        let id = self.kept.silences.set(silence, self.kept.clock.now())?;
        tracing::info!(silence_id = %id, "silence set");
        Ok(id)
    }

    /// Expires a silence now, as `DELETE /api/v2/silence/{id}` does.
    pub fn expire_silence(&self, id: &str) -> Result<(), SilenceError> {
        self.kept.silences.expire(id, self.kept.clock.now())?;
        tracing::info!(silence_id = %id, "silence expired");
        Ok(())
    }

    /// One silence with its state now.
    pub fn silence(&self, id: &str) -> Option<(Silence, SilenceState)> {
        self.kept.silences.get(id, self.kept.clock.now())
    }

    /// Every silence kept (expired ones until their retention ends) with its state now, in
    /// the order `GET /api/v2/silences` lists them.
    pub fn silences(&self) -> Vec<(Silence, SilenceState)> {
        self.kept.silences.list(self.kept.clock.now())
    }

    /// The receivers' names, in config order.
    pub fn receiver_names(&self) -> Vec<String> {
        self.routing()
            .config
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// When this Alertmanager was created.
    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.started_at
    }

    /// Dispatches alerts and runs the group timers until `shutdown`. Call it once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let taken = match self.pending.lock() {
            Ok(mut p) => p.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(mut pending) = taken else {
            tracing::error!("Alertmanager::run called twice");
            return;
        };
        let mut gc = tokio::time::interval(GC_INTERVAL);
        gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                alert = pending.recv() => match alert {
                    Some(alert) => {
                        let routing = self.routing();
                        routing.dispatcher.dispatch(alert, &self.tasks, &routing.stop);
                    }
                    None => break,
                },
                _ = gc.tick() => {
                    let now = self.kept.clock.now();
                    let dropped = self.kept.store.gc(now);
                    self.kept.nflog.gc(now);
                    let silences = self.kept.silences.gc(now);
                    tracing::debug!(dropped, silences, "alert garbage collection");
                }
                _ = shutdown.cancelled() => break,
            }
        }
        self.kept.root.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl AlertSink for Alertmanager {
    fn send(&self, alerts: Vec<PostableAlert>) {
        // Refusals are logged by `put_alerts`; the rule manager has no one to tell.
        let _refused = self.put_alerts(alerts);
    }
}
