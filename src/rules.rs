//! The rule manager in service and how it is reloaded (SIGHUP, `POST /-/reload`).
//!
//! A reload reads the config file and every rule file again. Only when all of them load and
//! every expression parses does a new manager replace the running one: the old one stops after
//! its evaluation in progress, the new one takes over its alert states (Prometheus's
//! `CopyState`: an alert keeps its `activeAt`, a pending `for` keeps counting) and its groups
//! keep their phase. Otherwise the old manager keeps running and the error is returned, logged
//! and counted in `prometheus_config_last_reload_successful`, as in Prometheus.
//!
//! The Alertmanager config (`--alertmanager.config.file`) is read again in the same reload, as
//! Alertmanager's own reload does: routes, receivers, inhibition and time intervals change,
//! alerts, silences and the notification log stay. Nothing is applied unless every file is
//! valid.
//!
//! What a reload changes: rule files (and `rule_files` globs), `evaluation_interval` and
//! `external_labels` as rules see them, and the Alertmanager config. `remote_write` is read at
//! start only.

use crate::config::ServerConfig;
use alertmanager::{AlertSink, ForRestoreOptions, QueryFn, RuleManager, RuleManagerOptions};
use anyhow::Context;
use logstore::LogStore;
use model::Labels;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What every rule manager is built from, fixed at start.
pub struct RuleInputs {
    /// `--config.file`, read again on reload for `rule_files`, `evaluation_interval` and
    /// `external_labels`.
    pub config_file: Option<PathBuf>,
    /// `--rules.file` flags, added to the config's `rule_files`.
    pub flag_rule_files: Vec<PathBuf>,
    /// `--rules.evaluation-interval`: the interval when the config sets none.
    pub default_interval: Duration,
    pub external_url: String,
    pub engine: Arc<promql::Engine>,
    pub logs: Arc<LogStore>,
    pub appender: Arc<dyn model::Appender>,
    pub sink: Arc<dyn AlertSink>,
    /// The in-process Alertmanager and its config file, reloaded with the rules.
    pub alertmanager: Option<(PathBuf, Arc<alertmanager::Alertmanager>)>,
}

/// The manager in service, what stops it, and the outcome of the last reload.
pub struct Rules {
    inputs: RuleInputs,
    current: api::CurrentRules,
    /// Held for a whole reload, so two reloads never interleave.
    running: tokio::sync::Mutex<Running>,
    shutdown: CancellationToken,
    last_reload_ok: AtomicBool,
    /// Unix seconds of the last successful (re)load, as f64 bits.
    last_success: AtomicU64,
}

struct Running {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Rules {
    /// Loads the rules of `config`, restores `for` state from `restore` (first start only, as
    /// Prometheus does) and starts evaluating until `shutdown`.
    pub fn start(
        inputs: RuleInputs,
        config: &ServerConfig,
        restore: (Arc<dyn model::Querier>, ForRestoreOptions),
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Rules>> {
        let manager = Arc::new(build(&inputs, config)?.with_for_restore(restore.0, restore.1));
        let current = api::CurrentRules::default();
        current.set(manager.clone());
        let stop = shutdown.child_token();
        let task = tokio::spawn(manager.run(stop.clone()));
        Ok(Arc::new(Rules {
            inputs,
            current,
            running: tokio::sync::Mutex::new(Running {
                stop,
                task: Some(task),
            }),
            shutdown,
            last_reload_ok: AtomicBool::new(true),
            last_success: AtomicU64::new(unix_seconds().to_bits()),
        }))
    }

    /// The slot the HTTP API reads the manager in service from.
    pub fn current(&self) -> api::CurrentRules {
        self.current.clone()
    }

    /// Reads the config and rule files again and puts the new rules in service, or keeps the
    /// old ones and says why.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let mut running = self.running.lock().await;
        let result = self.replace(&mut running).await;
        self.last_reload_ok.store(result.is_ok(), Ordering::Release);
        match &result {
            Ok(groups) => {
                self.last_success
                    .store(unix_seconds().to_bits(), Ordering::Release);
                tracing::info!(rule_groups = groups, "configuration reloaded");
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "reload failed; the previous rules stay in service"
                );
            }
        }
        result.map(|_| ())
    }

    async fn replace(&self, running: &mut Running) -> anyhow::Result<usize> {
        let config = match &self.inputs.config_file {
            Some(path) => ServerConfig::load(path)?,
            None => ServerConfig::default(),
        };
        let new = build(&self.inputs, &config)?;
        let am_config = match &self.inputs.alertmanager {
            Some((path, am)) => Some((
                alertmanager::AlertmanagerConfig::load(path)
                    .with_context(|| format!("alertmanager config {}", path.display()))?,
                am,
            )),
            None => None,
        };
        // Every file is valid: apply.
        if let Some((config, am)) = am_config {
            am.reload(config);
        }
        // The old manager finishes the evaluation it is in, then its states move over.
        running.stop.cancel();
        if let Some(task) = running.task.take() {
            let _ = task.await;
        }
        if let Some(old) = self.current.get() {
            new.take_state_from(&old);
        }
        let groups = new.groups().count();
        let new = Arc::new(new);
        self.current.set(new.clone());
        running.stop = self.shutdown.child_token();
        running.task = Some(tokio::spawn(new.run(running.stop.clone())));
        Ok(groups)
    }

    /// Waits for shutdown, then until the manager in service has stopped.
    pub async fn stopped(&self) {
        self.shutdown.cancelled().await;
        let task = self.running.lock().await.task.take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Prometheus's reload gauges, for `/metrics`.
    pub fn gauges(self: &Arc<Self>) -> api::GaugeFn {
        let me = Arc::clone(self);
        Arc::new(move || {
            vec![
                (
                    "prometheus_config_last_reload_successful",
                    "Whether the last configuration reload attempt was successful.",
                    f64::from(u8::from(me.last_reload_ok.load(Ordering::Acquire))),
                ),
                (
                    "prometheus_config_last_reload_success_timestamp_seconds",
                    "Timestamp of the last successful configuration reload.",
                    f64::from_bits(me.last_success.load(Ordering::Acquire)),
                ),
            ]
        })
    }
}

/// Reloads on every SIGHUP until `shutdown`, as Prometheus does.
#[cfg(unix)]
pub async fn reload_on_sighup(rules: Arc<Rules>, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hangups.recv() => {
                if got.is_none() {
                    return;
                }
                // The outcome is logged and counted by `reload`.
                let _ = rules.reload().await;
            }
        }
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A manager for `config`'s rule files (and the `--rules.file` flags), every expression
/// checked first.
fn build(inputs: &RuleInputs, config: &ServerConfig) -> anyhow::Result<RuleManager> {
    let mut rule_files = config.rule_files.clone();
    rule_files.extend(inputs.flag_rule_files.iter().cloned());
    let groups = alertmanager::load_rule_files(&rule_files).context("load rule files")?;
    check_rule_queries(&groups)?;
    Ok(RuleManager::new(
        groups,
        query_fn(inputs.engine.clone()),
        inputs.appender.clone(),
        inputs.sink.clone(),
        RuleManagerOptions {
            evaluation_interval: config
                .evaluation_interval
                .unwrap_or(inputs.default_interval),
            external_url: inputs.external_url.clone(),
            external_labels: Labels::from_pairs(config.external_labels.clone()),
            ..RuleManagerOptions::default()
        },
    )
    // LogQL rules (recognised by `rule_language`) query the log store.
    .with_log_query(log_query_fn(inputs.logs.clone()), |expr| {
        rule_language(expr).unwrap_or(alertmanager::QueryLanguage::PromQL)
    }))
}

/// Refuses a rule whose expression does not parse or that the engine cannot evaluate, so the
/// mistake surfaces at load, naming the file, group and rule, as Prometheus does. An expression
/// that is not PromQL may be a LogQL metric query (`rule_language`).
pub(crate) fn check_rule_queries(groups: &[alertmanager::RuleGroup]) -> anyhow::Result<()> {
    for g in groups {
        for (index, rule) in g.rules.iter().enumerate() {
            rule_language(rule.expr()).map_err(|e| {
                // promtool's form: `file: line:col: group "g", rule 1, "A": could not parse …`.
                let at = rule.expr_at().map(|p| format!(" {p}:")).unwrap_or_default();
                anyhow::anyhow!(
                    "{}:{at} group {:?}, rule {}, {:?}: could not parse expression: {e}",
                    g.file,
                    g.name,
                    index + 1,
                    rule.name()
                )
            })?;
        }
    }
    Ok(())
}

/// The language of a rule expression, PromQL or LogQL, by `alertmanager::classify_expr`'s
/// rules (its module doc says why).
pub(crate) fn rule_language(expr: &str) -> Result<alertmanager::QueryLanguage, String> {
    alertmanager::classify_expr(
        expr,
        |e| promql::check(e).map_err(|e| e.to_string()),
        |e| match logstore::parse_expr(e) {
            Ok(logstore::Expr::Metric(m)) => {
                // Whether it selects streams by labels alone: some selector, none on `__name__`.
                let (mut selectors, mut names_metric) = (0, false);
                m.for_each_range(&mut |_, _, range| {
                    selectors += 1;
                    names_metric |= range.query.matchers.iter().any(|m| m.name == "__name__");
                });
                Ok(selectors > 0 && !names_metric)
            }
            Ok(logstore::Expr::Log(_)) => {
                Err("a log query selects lines; a rule needs a metric query".into())
            }
            Err(e) => Err(e.to_string()),
        },
    )
}

/// How LogQL rules reach the log store: an instant metric query at a time.
pub(crate) fn log_query_fn(logs: Arc<LogStore>) -> QueryFn {
    Arc::new(move |query: &str, t_ms: i64| {
        match logs.instant_query(query, t_ms.saturating_mul(1_000_000)) {
            Ok(logstore::QueryResult::Vector(v)) => Ok(v),
            Ok(logstore::QueryResult::Scalar(v)) => Ok(vec![(Labels::empty(), v)]),
            Ok(_) => Err("rule query must return a vector or scalar".into()),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// How rules reach the PromQL engine: an instant query at a time, answered as a vector.
pub(crate) fn query_fn(engine: Arc<promql::Engine>) -> QueryFn {
    Arc::new(move |query: &str, t_ms: i64| {
        let res = engine
            .instant_query(query, t_ms)
            .map_err(|e| e.to_string())?;
        match res.value {
            promql::Value::Vector(v) => Ok(v.into_iter().map(|e| (e.labels, e.v)).collect()),
            promql::Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
            other => Err(format!(
                "rule query must return a vector or scalar, got {}",
                value_kind(&other)
            )),
        }
    })
}

fn value_kind(v: &promql::Value) -> &'static str {
    match v {
        promql::Value::Scalar { .. } => "scalar",
        promql::Value::String { .. } => "string",
        promql::Value::Vector(_) => "vector",
        promql::Value::Matrix(_) => "matrix",
    }
}
