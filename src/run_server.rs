//! Wiring of `vigil server`: storage, query engine, log store, rules and the in-process
//! Alertmanager behind the HTTP API, stopped in order on shutdown.

use crate::cli::ServerArgs;
use crate::config::ServerConfig;
use alertmanager::{
    AlertSink, Alertmanager, AlertmanagerConfig, AlertmanagerOptions, PostableAlert,
};
use anyhow::Context;
use logstore::LogStore;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server that is listening.
pub struct Started {
    pub address: SocketAddr,
    serving: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    /// Stops the remote-write queues once the HTTP server has drained, so what the last
    /// requests appended is still forwarded.
    forward_stop: CancellationToken,
}

impl Started {
    /// Waits until the HTTP server has stopped (after shutdown) and background tasks finished.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.serving.await.context("HTTP server task")?;
        self.forward_stop.cancel();
        for task in self.background {
            let _ = task.await;
        }
        served.context("HTTP server")
    }
}

pub async fn run(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(args, shutdown).await?.wait().await
}

/// Opens storage, loads rules and configs, binds the listener and starts serving. Every
/// configuration error surfaces here, before the server reports itself listening.
pub async fn start(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let core = &args.core;
    let config = match &core.config_file {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };

    // Replays the WAL before the server listens, so every acknowledged sample is queryable
    // from the first request on.
    let head = Arc::new(
        tsdb::Tsdb::open(&core.tsdb_path, tsdb_options(core))
            .with_context(|| format!("open tsdb at {}", core.tsdb_path.display()))?,
    );
    let engine_options = promql::EngineOptions {
        lookback_delta: core.lookback_delta,
        max_samples: core.query_max_samples,
        timeout: core.query_timeout,
    };
    let engine = Arc::new(promql::Engine::new(head.clone(), engine_options.clone()));
    let logs = Arc::new(
        LogStore::open_with(&core.storage_logs_path, core.log_store_options())
            .with_context(|| format!("open log store at {}", core.storage_logs_path.display()))?,
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let external_url = core
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));

    let mut background = Vec::new();
    // Remote write out: every sample the store accepts (remote write in, rule results) is
    // queued for each `remote_write` receiver.
    let forward_queues = config
        .remote_write
        .iter()
        .cloned()
        .map(collector::ForwardConfig::build)
        .collect::<Result<Vec<_>, _>>()
        .context("remote_write")?;
    let forward_stop = CancellationToken::new();
    for q in &forward_queues {
        tracing::info!(
            remote_name = q.name(),
            url = q.url(),
            "remote write enabled"
        );
        background.push(tokio::spawn(q.clone().run(forward_stop.clone())));
    }
    let appender: Arc<dyn model::Appender> = if forward_queues.is_empty() {
        head.clone()
    } else {
        Arc::new(collector::ForwardingAppender::new(
            head.clone(),
            forward_queues.clone(),
        ))
    };
    let mut alertmanager = None;
    let sink: Arc<dyn AlertSink> = match &core.alertmanager_config {
        Some(path) => {
            let am_config = AlertmanagerConfig::load(path)
                .with_context(|| format!("alertmanager config {}", path.display()))?;
            let am = Arc::new(Alertmanager::new(
                am_config,
                AlertmanagerOptions {
                    external_url: external_url.clone(),
                    data_dir: Some(
                        core.alertmanager_storage
                            .clone()
                            .unwrap_or_else(|| core.tsdb_path.with_file_name("alertmanager")),
                    ),
                },
            ));
            background.push(tokio::spawn(am.clone().run(shutdown.clone())));
            alertmanager = Some(am.clone());
            am
        }
        None => Arc::new(DiscardSink),
    };

    let rules = crate::rules::Rules::start(
        crate::rules::RuleInputs {
            config_file: core.config_file.clone(),
            flag_rule_files: core.rule_files.clone(),
            default_interval: core.evaluation_interval,
            external_url: external_url.clone(),
            engine: engine.clone(),
            logs: logs.clone(),
            appender: appender.clone(),
            sink,
            alertmanager: core.alertmanager_config.clone().zip(alertmanager.clone()),
        },
        &config,
        // `for` state survives restarts: each group's first evaluations read ALERTS_FOR_STATE.
        (
            head.clone(),
            alertmanager::ForRestoreOptions {
                outage_tolerance: core.for_outage_tolerance,
                grace_period: core.for_grace_period,
            },
        ),
        shutdown.clone(),
    )?;
    let group_count = rules.current().get().map_or(0, |r| r.groups().count());
    #[cfg(unix)]
    background.push(tokio::spawn(crate::rules::reload_on_sighup(
        rules.clone(),
        shutdown.clone(),
    )));
    {
        let rules = rules.clone();
        background.push(tokio::spawn(async move { rules.stopped().await }));
    }

    let mut state = api::AppState::new(head.clone(), appender, engine, logs);
    if !forward_queues.is_empty() {
        state.text_metrics.push(Arc::new(move || {
            collector::render_forward_metrics(&forward_queues)
        }));
    }
    state.engine_options = engine_options;
    state.config_yaml = config.redacted_yaml();
    state.tsdb_status = Some(tsdb_status_fn(head.clone()));
    state.storage_retention = tsdb_options(core).retention.to_string();
    // Replay finishes before the server listens, so the figures are final from the start.
    let replay = head.replay_stats();
    let last = replay.last_segment.unwrap_or(0);
    let replayed = api::WalReplayStatus {
        min: replay.first_segment.unwrap_or(0),
        max: last,
        current: last,
    };
    state.wal_replay = Some(Arc::new(move || replayed));
    state.rules = rules.current();
    state.gauges.push(rules.gauges());
    if core.enable_lifecycle {
        let rules = rules.clone();
        state.reload = Some(Arc::new(move || {
            let rules = rules.clone();
            Box::pin(async move { rules.reload().await.map_err(|e| format!("{e:#}")) })
        }));
    }
    state.alertmanager = alertmanager;
    let gauge_head = head.clone();
    state.gauges.push(Arc::new(move || {
        vec![(
            "vigil_tsdb_head_samples",
            "Samples in the head block.",
            gauge_head.num_samples() as f64,
        )]
    }));
    let metrics_head = head.clone();
    state
        .text_metrics
        .push(Arc::new(move || metrics_head.render_metrics()));
    let app = api::router(Arc::new(state));
    tracing::info!(%address, rule_groups = group_count, "listening");
    let serving = tokio::spawn(api::serve(listener, app, shutdown));
    Ok(Started {
        address,
        serving,
        background,
        forward_stop,
    })
}

/// The TSDB's options from the `--storage.tsdb.*` flags. As in Prometheus, the retention
/// time defaults to 15d only when neither retention flag is given, and 0 means no limit.
fn tsdb_options(core: &crate::cli::ServerCore) -> tsdb::TsdbOptions {
    let time = match (core.tsdb_retention_time, core.tsdb_retention_size) {
        (None, None) => Some(tsdb::DEFAULT_RETENTION_TIME),
        (t, _) => t.filter(|d| !d.is_zero()),
    };
    tsdb::TsdbOptions {
        block_range: core.tsdb_min_block_duration,
        retention: tsdb::Retention {
            time,
            size_bytes: core.tsdb_retention_size.filter(|b| *b > 0),
        },
        limits: tsdb::Limits {
            max_labels_per_series: core.tsdb_max_labels_per_series,
            max_label_name_length: core.tsdb_max_label_name_length,
            max_label_value_length: core.tsdb_max_label_value_length,
            max_series_per_metric: core.tsdb_max_series_per_metric,
        },
        out_of_order_window: core.tsdb_out_of_order_window,
        ..tsdb::TsdbOptions::default()
    }
}

/// `/api/v1/status/tsdb` from the TSDB's own report, which has the chunk count a `Querier`
/// cannot give.
fn tsdb_status_fn(db: Arc<tsdb::Tsdb>) -> api::TsdbStatusFn {
    let convert = |list: Vec<tsdb::Stat>| -> Vec<api::TsdbStat> {
        list.into_iter()
            .map(|s| api::TsdbStat {
                name: s.name,
                value: s.value,
            })
            .collect()
    };
    Arc::new(move |limit| match db.status(limit) {
        Ok(s) => Ok(api::TsdbStatus {
            head_stats: api::HeadStats {
                num_series: s.num_series,
                num_label_pairs: s.num_label_pairs,
                chunk_count: i64::try_from(s.num_chunks).unwrap_or(i64::MAX),
                min_time: s.min_time.unwrap_or(i64::MAX),
                max_time: s.max_time.unwrap_or(i64::MIN),
            },
            series_count_by_metric_name: convert(s.series_count_by_metric_name),
            label_value_count_by_label_name: convert(s.label_value_count_by_label_name),
            memory_in_bytes_by_label_name: convert(s.memory_in_bytes_by_label_name),
            series_count_by_label_value_pair: convert(s.series_count_by_label_value_pair),
        }),
        // Only a panic elsewhere poisons the index; the status page answers 500 with why.
        Err(e) => Err(format!("tsdb status unavailable: {e}")),
    })
}

/// Where alerts go when no Alertmanager config is given: nowhere, but they still show in the
/// API, as with a Prometheus that has no `alerting` section.
struct DiscardSink;

impl AlertSink for DiscardSink {
    fn send(&self, alerts: Vec<PostableAlert>) {
        tracing::debug!(
            count = alerts.len(),
            "alerts not sent: no alertmanager configured"
        );
    }
}
