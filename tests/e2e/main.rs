//! End-to-end tests: the real `vigil` binary on 127.0.0.1 port 0 with a temp dir, driven
//! over HTTP the way Prometheus, Promtail, Grafana and Alertmanager receivers drive it.

// In a test harness a panic is a failed test with its message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
#[path = "../common/wire.rs"]
mod wire;

mod agent;
mod agent_http;
mod agent_pods;
mod alerting;
mod alerting_api;
mod alerting_check;
mod alerting_diff;
mod alerting_groups;
mod alerting_nflog;
mod alerting_phase;
mod alerting_reload;
mod alerting_restore;
mod alerting_rules_logql;
mod amtool;
mod check;
mod cli;
mod crash;
mod dashboards;
mod grafana;
mod log_queue;
mod logs;
mod logs_durability;
mod loki;
mod loki_tail;
mod metrics;
mod peers;
mod prom_peering;
mod promql_diff;
mod remote_write_out;
mod remote_write_queue;
mod scrape;
mod tail_stress;
mod tsdb_blocks;
mod tsdb_full_disk;
mod tsdb_ingest;
mod tsdb_lock;
mod tsdb_status;
