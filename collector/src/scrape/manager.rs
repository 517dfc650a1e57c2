//! The scraper: one pool per job, each holding the job's target groups and one scrape loop
//! per target, kept in step with discovery.
//!
//! A pool re-derives its targets whenever a group changes (a static config once, at start; a
//! discovered pod on every event): each discovered label set goes through `target.rs` and the
//! job's `relabel_configs`. Loops of targets that stay keep running untouched (their series
//! cache and phase with them); new targets get a loop; loops of targets that went away are
//! stopped and write their end-of-run staleness markers. The view `/api/v1/targets` reads is
//! replaced at the end of each sync.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use model::Labels;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{PoolConfig, ScrapeFile};
use super::metrics::ScrapeMetrics;
use super::scrape_loop::{self, lock, Health, LoopContext};
use super::target::{discovered_labels, finish_target, jitter_seed, Target, TargetGroup};
use super::ScrapeError;
use crate::cadvisor::SharedPods;
use crate::discovery::{in_cluster, KubernetesSdConfig, PodWatcher, Subscriber};
use crate::httpconf::HttpClient;
use crate::ship::{MetricBatch, USER_AGENT};

/// A change from discovery: the new contents of some of a job's groups (a group with no
/// targets is removed).
#[derive(Clone, Debug)]
pub struct GroupUpdate {
    pub job: String,
    pub groups: Vec<TargetGroup>,
}

/// The targets of every job as `/api/v1/targets` shows them; shared with the HTTP endpoint.
#[derive(Debug, Default)]
pub struct TargetsView {
    pools: Mutex<BTreeMap<String, PoolView>>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PoolView {
    pub active: Vec<ActiveTarget>,
    /// The discovered labels of targets relabeling dropped.
    pub dropped: Vec<Labels>,
}

#[derive(Clone, Debug)]
pub(crate) struct ActiveTarget {
    pub target: Arc<Target>,
    pub health: Arc<Mutex<Health>>,
}

impl TargetsView {
    /// A copy of every pool's view, by job name.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, PoolView> {
        lock(&self.pools).clone()
    }
}

/// The scrape component: built from a [`ScrapeFile`], run with a shutdown signal and the
/// metrics channel of the remote-write sink.
#[derive(Debug)]
pub struct Scraper {
    pools: Vec<Pool>,
    view: Arc<TargetsView>,
    seed: u64,
    node_name: String,
    updates_tx: mpsc::Sender<GroupUpdate>,
    updates_rx: mpsc::Receiver<GroupUpdate>,
    /// The node's pod index to keep current, and the API server to watch for it.
    pod_index: Option<(SharedPods, Option<String>)>,
    metrics: Arc<ScrapeMetrics>,
}

/// Discovery updates waiting for the scraper; discovery sends whole groups, so a short queue
/// only delays, never loses, a change.
const UPDATES_CAPACITY: usize = 64;

#[derive(Debug)]
struct Pool {
    cfg: Arc<PoolConfig>,
    client: HttpClient,
    groups: BTreeMap<String, TargetGroup>,
    loops: HashMap<u64, Running>,
    forced_error: Arc<Mutex<Option<String>>>,
}

#[derive(Debug)]
struct Running {
    active: ActiveTarget,
    stop: CancellationToken,
}

/// What every loop the scraper starts shares.
struct Spawner<'a> {
    seed: u64,
    output: &'a mpsc::Sender<MetricBatch>,
    tracker: &'a TaskTracker,
    shutdown: &'a CancellationToken,
}

impl Scraper {
    /// Checks `file` and prepares one pool per job with its static targets; `node_name` seeds
    /// the targets' jitter so agents on different nodes spread alike targets differently.
    pub fn new(file: &ScrapeFile, node_name: &str) -> Result<Scraper, ScrapeError> {
        let pools = file
            .pools()?
            .into_iter()
            .zip(&file.scrape_configs)
            .map(|(cfg, sc)| {
                // One client per job: its TLS, proxy and credentials are the job's; the PEM
                // files are read here, so a changed one is used from the next load on.
                let client = cfg
                    .http
                    .build(reqwest::Client::builder().user_agent(USER_AGENT))
                    .map_err(|error| ScrapeError::Http {
                        job: cfg.job_name.clone(),
                        error,
                    })?;
                let groups = sc
                    .static_configs
                    .iter()
                    .enumerate()
                    .map(|(i, g)| {
                        let source = format!("static/{i}");
                        let group = TargetGroup {
                            source: source.clone(),
                            targets: g
                                .targets
                                .iter()
                                .map(|a| Labels::from_pairs([(super::target::ADDRESS, a.as_str())]))
                                .collect(),
                            labels: Labels::from_pairs(
                                g.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                            ),
                        };
                        (source, group)
                    })
                    .collect();
                Ok(Pool {
                    cfg: Arc::new(cfg),
                    client,
                    groups,
                    loops: HashMap::new(),
                    forced_error: Arc::default(),
                })
            })
            .collect::<Result<_, ScrapeError>>()?;
        let (updates_tx, updates_rx) = mpsc::channel(UPDATES_CAPACITY);
        Ok(Scraper {
            pools,
            view: Arc::default(),
            seed: jitter_seed(node_name),
            node_name: node_name.to_string(),
            updates_tx,
            updates_rx,
            pod_index: None,
            metrics: Arc::default(),
        })
    }

    /// Also keeps `pods` current with every pod of this node, from `api_server` (default: the
    /// in-cluster API server). A job's `role: pod` discovery with the same API server and no
    /// selectors shares its watch; without one a watch is opened for the index alone, and
    /// outside a cluster with no `api_server` the index stays empty.
    pub fn with_pod_index(mut self, pods: SharedPods, api_server: Option<String>) -> Scraper {
        self.pod_index = Some((pods, api_server));
        self
    }

    /// Where discovery sends its target groups.
    pub fn group_sender(&self) -> mpsc::Sender<GroupUpdate> {
        self.updates_tx.clone()
    }

    /// The scraper's own metrics, for the agent's `/metrics`.
    pub fn metrics(&self) -> Arc<ScrapeMetrics> {
        self.metrics.clone()
    }

    /// The live view of targets, for `/api/v1/targets`.
    pub fn targets(&self) -> Arc<TargetsView> {
        self.view.clone()
    }

    /// Scrapes until `shutdown`, applying discovery's updates as they come; returns once
    /// every loop has stopped, so `output` closes after the last batch.
    pub async fn run(mut self, shutdown: CancellationToken, output: mpsc::Sender<MetricBatch>) {
        let tracker = TaskTracker::new();
        let spawner = Spawner {
            seed: self.seed,
            output: &output,
            tracker: &tracker,
            shutdown: &shutdown,
        };
        for i in 0..self.pools.len() {
            self.sync(i, &spawner);
        }
        for watcher in self.pod_watchers() {
            tracker.spawn(watcher.run(shutdown.clone()));
        }
        // Only discovery's senders remain, so the channel closes when discovery ends.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.updates_tx, closed));
        loop {
            let update = tokio::select! {
                _ = shutdown.cancelled() => break,
                update = self.updates_rx.recv() => update,
            };
            match update {
                Some(update) => self.apply(update, &spawner),
                // Discovery is gone; the targets known keep being scraped.
                None => {
                    shutdown.cancelled().await;
                    break;
                }
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// One watcher per distinct API server and selector set, each feeding every job that
    /// names it, and the pod index fed by the unselected one.
    fn pod_watchers(&self) -> Vec<PodWatcher> {
        let mut watchers: Vec<PodWatcher> = Vec::new();
        for pool in &self.pools {
            for (i, sd) in pool.cfg.kubernetes_sd_configs.iter().enumerate() {
                let subscriber = Subscriber {
                    job: pool.cfg.job_name.clone(),
                    prefix: format!("kubernetes/{i}"),
                    output: self.updates_tx.clone(),
                };
                match watchers.iter_mut().find(|w| w.cfg == *sd) {
                    Some(w) => w.subscribers.push(subscriber),
                    None => watchers.push(PodWatcher {
                        node_name: self.node_name.clone(),
                        cfg: sd.clone(),
                        subscribers: vec![subscriber],
                        index: None,
                    }),
                }
            }
        }
        let Some((pods, api_server)) = &self.pod_index else {
            return watchers;
        };
        let all_pods = KubernetesSdConfig {
            role: "pod".to_string(),
            api_server: api_server.clone(),
            selectors: Vec::new(),
        };
        match watchers.iter_mut().find(|w| w.cfg == all_pods) {
            Some(w) => w.index = Some(pods.clone()),
            None if api_server.is_some() || in_cluster() => watchers.push(PodWatcher {
                node_name: self.node_name.clone(),
                cfg: all_pods,
                subscribers: Vec::new(),
                index: Some(pods.clone()),
            }),
            None => tracing::debug!(
                "not in a cluster: no pod index, container metrics carry cgroup ids only"
            ),
        }
        watchers
    }

    fn apply(&mut self, update: GroupUpdate, spawner: &Spawner<'_>) {
        let Some(i) = self.pools.iter().position(|p| p.cfg.job_name == update.job) else {
            tracing::warn!(job = %update.job, "discovery update for an unknown job");
            return;
        };
        for group in update.groups {
            if group.targets.is_empty() {
                self.pools[i].groups.remove(&group.source);
            } else {
                self.pools[i].groups.insert(group.source.clone(), group);
            }
        }
        self.sync(i, spawner);
    }

    /// Brings pool `i`'s loops in line with its groups and publishes its view.
    fn sync(&mut self, i: usize, spawner: &Spawner<'_>) {
        let began = std::time::Instant::now();
        let pool = &mut self.pools[i];
        let cfg = pool.cfg.clone();
        let mut wanted: BTreeMap<u64, Target> = BTreeMap::new();
        let mut dropped = Vec::new();
        for group in pool.groups.values() {
            for own in &group.targets {
                let discovered = discovered_labels(&cfg, &group.labels, own);
                let Some(relabeled) = model::relabel(&cfg.relabel_configs, discovered.clone())
                else {
                    dropped.push(discovered);
                    continue;
                };
                match finish_target(&cfg, discovered, relabeled) {
                    Ok(t) => {
                        wanted.entry(t.hash()).or_insert(t);
                    }
                    Err(reason) => {
                        tracing::warn!(job = %cfg.job_name, group = %group.source, %reason, "target skipped")
                    }
                }
            }
        }
        let over_limit = cfg.target_limit > 0 && wanted.len() as u64 > cfg.target_limit;
        let (discovered, targets) = ((wanted.len() + dropped.len()) as u64, wanted.len() as u64);
        *lock(&pool.forced_error) = over_limit.then(|| {
            format!(
                "target_limit exceeded (number of targets: {}, limit: {})",
                wanted.len(),
                cfg.target_limit
            )
        });
        pool.loops.retain(|hash, running| {
            let keep = wanted.contains_key(hash);
            if !keep {
                running.stop.cancel();
            }
            keep
        });
        for (hash, target) in wanted {
            if let Some(running) = pool.loops.get_mut(&hash) {
                // Same labels and URL; the discovered labels may still have changed.
                running.active.target = Arc::new(target);
                continue;
            }
            let target = Arc::new(target);
            let health = Arc::new(Mutex::new(Health::unknown()));
            let stop = spawner.shutdown.child_token();
            let ctx = LoopContext {
                client: pool.client.clone(),
                pool: cfg.clone(),
                forced_error: pool.forced_error.clone(),
                seed: spawner.seed,
                output: spawner.output.clone(),
                metrics: self.metrics.clone(),
            };
            spawner.tracker.spawn(scrape_loop::run(
                ctx,
                target.clone(),
                health.clone(),
                stop.clone(),
                spawner.shutdown.clone(),
            ));
            pool.loops.insert(
                hash,
                Running {
                    active: ActiveTarget { target, health },
                    stop,
                },
            );
        }
        let mut active: Vec<ActiveTarget> = pool.loops.values().map(|r| r.active.clone()).collect();
        active.sort_by(|a, b| a.target.labels.cmp(&b.target.labels));
        lock(&self.view.pools).insert(cfg.job_name.clone(), PoolView { active, dropped });
        self.metrics.synced(
            &cfg.job_name,
            discovered,
            targets,
            began.elapsed(),
            over_limit,
        );
    }
}
