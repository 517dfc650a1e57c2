//! The `vigil` binary: command-line parsing and wiring of the library crates, nothing else.
//!
//! - `vigil server`: storage, queries, rules and alerting behind the HTTP API.
//! - `vigil agent`: node metrics and log tailing, shipped to a server.
//! - `vigil up`: both in one process, watching this machine.

mod check;
mod cli;
mod config;
mod rules;
mod run_agent;
mod run_server;

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr (the log piped into a reader that went away) must not take the
        // process down: the subscriber would report the failed write with a panicking
        // eprintln and kill whichever task was logging, e.g. the shipper.
        .log_internal_errors(false)
        .init();
    // Offline checks need no runtime and end with promtool's exit codes.
    match &cli.command {
        cli::Command::Check(cmd) => std::process::exit(check::check(cmd)),
        cli::Command::Test(cmd) => std::process::exit(check::test(cmd)),
        _ => {}
    }
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        survive_file_size_limit();
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match cli.command {
            cli::Command::Server(args) => run_server::run(args, shutdown).await,
            cli::Command::Agent(args) => run_agent::run(args, shutdown).await,
            cli::Command::Up(args) => run_up(*args, shutdown).await,
            // Handled above, before the runtime starts.
            cli::Command::Check(_) | cli::Command::Test(_) => Ok(()),
        }
    })
}

/// `vigil up`: a server on the listen address and an agent shipping to it over loopback, so
/// the agent's path is the same one a DaemonSet agent takes.
async fn run_up(args: cli::UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let server_args = args.server_args();
    let started = run_server::start(server_args, shutdown.clone()).await?;
    let base = format!("http://{}", loopback_of(started.address));
    let agent_args = args.agent_args(&base);
    let agent = tokio::spawn(run_agent::run(agent_args, shutdown.clone()));
    let served = started.wait().await;
    shutdown.cancel();
    agent.await??;
    served
}

/// The address the agent in `vigil up` uses to reach its own server: loopback when the server
/// listens on every interface.
fn loopback_of(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Keeps a file-size limit (`ulimit -f`, RLIMIT_FSIZE) from killing the process. A write
/// past the limit raises SIGXFSZ, whose default action ends the process with a core dump;
/// once the signal is handled, the same write fails with EFBIG instead, which the WAL
/// turns into a failed request (500) and a new segment, as it does any write error. A
/// storage server must treat a full file like a full disk: an I/O error, never a crash.
///
/// tokio's handler stays installed for the life of the process (dropping the stream only
/// stops delivery to it), so registering once at start-up is enough; nothing reads it.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        // SIGXFSZ is 25 on Linux (x86, ARM, RISC-V, …), macOS and the BSDs; MIPS numbers
        // it 31. No crate in the workspace names it with the features enabled (rustix has
        // it behind `process`).
        #[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
        const SIGXFSZ: i32 = 25;
        #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
        const SIGXFSZ: i32 = 31;
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(e) = signal(SignalKind::from_raw(SIGXFSZ)) {
            tracing::warn!(error = %e, "cannot handle SIGXFSZ; a file-size limit will end the process");
        }
    }
}

/// Caps glibc's malloc at two arenas (unless `MALLOC_ARENA_MAX` says otherwise), before any
/// thread starts.
///
/// glibc gives a thread that finds the arenas busy one of its own, up to eight per core, and
/// memory freed into an arena stays with it: the server's ingest and the agent's collections
/// allocate on whichever tokio worker or blocking thread runs them, so their memory was spread
/// over a dozen arenas, each holding freed pages. Measured: the agent's resident memory at
/// the end of `vigil-bench footprint` 32 → 25–27 MiB; the server's per series in `vigil-bench
/// tsdb` (20,000 series) 6.6–9.5 KB over five runs with two arenas against 8.9–9.7 KB over
/// three without (the figure moves run to run); CPU per sample and PromQL latency unchanged.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `M_ARENA_MAX` in glibc's `malloc.h`.
        const M_ARENA_MAX: std::ffi::c_int = -8;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: `mallopt` is glibc's documented tuning call; it takes two integers, touches
        // only the allocator's own settings and is called before any other thread exists.
        #[allow(unsafe_code)]
        let set = unsafe { mallopt(M_ARENA_MAX, 2) };
        if set != 1 {
            tracing::debug!("mallopt(M_ARENA_MAX) refused; malloc keeps its default arenas");
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM, so every component stops in order.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
