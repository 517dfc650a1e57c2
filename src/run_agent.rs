//! Wiring of `vigil agent`: the command-line flags become the collector's configuration.

use crate::cli::AgentArgs;
use tokio_util::sync::CancellationToken;

pub async fn run(args: AgentArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let s = args.sources;
    let mut cfg = collector::AgentConfig::new(args.remote_write_url, args.logs_push_url);
    cfg.node_name = s.node_name;
    cfg.procfs = s.procfs;
    cfg.sysfs = s.sysfs;
    cfg.rootfs = s.rootfs;
    cfg.cadvisor = s.cadvisor;
    cfg.kubernetes_api_server = s.kubernetes_api_server;
    cfg.logs_path = s.logs_path;
    cfg.log_files = s.log_files;
    cfg.max_line_bytes = usize::try_from(s.max_line_size).unwrap_or(usize::MAX);
    cfg.state_path = s.state_path;
    cfg.logs_queue_max_bytes = s.logs_queue_max_bytes;
    cfg.remote_write_queue_max_bytes = s.remote_write_queue_max_bytes;
    cfg.remote_write_shards = s.remote_write_shards;
    cfg.scrape_interval = s.interval;
    cfg.web_listen_address = args.listen;
    if let Some(url) = args.targets_push_url {
        cfg.targets_push_url = Some(url).filter(|u| !u.is_empty());
    }
    cfg.targets_push_interval = args.targets_push_interval;
    if let Some(path) = &args.config_file {
        cfg.scrape = collector::ScrapeFile::load(path)?;
    }
    if args.kubernetes_pods {
        cfg.scrape
            .scrape_configs
            .push(collector::ScrapeConfig::annotated_pods()?);
    }
    collector::run_agent(cfg, shutdown).await?;
    Ok(())
}
