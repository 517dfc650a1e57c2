//! Prometheus rules: rule files ([`file`]), the template expander for labels and annotations
//! ([`template`]), the per-rule state machines ([`eval`]) and the manager that runs groups on
//! their interval ([`manager`]).
//!
//! *API Boundary*: rules see the query engines only through [`QueryFn`]s (PromQL, and LogQL for
//! the rules `lang` recognises as LogQL) and storage only through `model::Appender`; this
//! crate never imports `promql`, `logstore` or `tsdb`.

mod eval;
mod file;
mod lang;
mod manager;
mod position;
mod restore;
mod status;
mod template;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod restore_tests;

pub use eval::{
    ActiveAlert, AlertState, ALERTS_FOR_STATE_METRIC, ALERTS_METRIC, RESOLVED_RETENTION_MS,
};
pub use file::{load_rule_files, parse_rule_file, AlertingRule, RecordingRule, Rule, RuleGroup};
pub use lang::{classify_expr, QueryLanguage};
pub use manager::{
    AlertSink, RuleManager, RuleManagerOptions, DEFAULT_EVALUATION_INTERVAL, DEFAULT_RESEND_DELAY,
};
pub use position::Position;
pub use restore::{ForRestoreOptions, DEFAULT_FOR_GRACE_PERIOD, DEFAULT_FOR_OUTAGE_TOLERANCE};
pub use status::{GroupStatus, RuleHealth, RuleStatus};

/// An instant query at `t_ms` returning an instant vector: how rules see the query engine
/// (never importing it). The error is the engine's message.
pub type QueryFn =
    std::sync::Arc<dyn Fn(&str, i64) -> Result<Vec<(model::Labels, f64)>, String> + Send + Sync>;
