//! The command line: help for every subcommand and flag, and clear failures on bad input.

use crate::harness::BIN;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run vigil");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_subcommand_and_flag() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["up", "server", "agent"] {
        assert!(out.contains(sub), "{out}");
    }
    let expect: &[(&str, &[&str])] = &[
        (
            "server",
            &[
                "--web.listen-address",
                "--storage.tsdb.path",
                "--storage.logs.path",
                "--config.file",
                "--rules.file",
                "--alertmanager.config.file",
                "--query.lookback-delta",
            ],
        ),
        (
            "agent",
            &[
                "--remote-write.url",
                "--logs.push-url",
                "--node-name",
                "--logs.path",
                "--logs.files",
                "--state.path",
                "--path.procfs",
            ],
        ),
        (
            "up",
            &[
                "--web.listen-address",
                "--storage.tsdb.path",
                "--logs.path",
                "--rules.file",
            ],
        ),
    ];
    for (sub, flags) in expect {
        let (code, out, _) = run(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub} --help");
        for f in *flags {
            assert!(out.contains(f), "{sub} --help lacks {f}:\n{out}");
        }
    }
}

#[test]
fn bad_flags_and_bad_files_fail_clearly() {
    let (code, _, err) = run(&["server", "--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(err.contains("--no-such-flag"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "server",
        "--web.listen-address=127.0.0.1:0",
        &format!("--storage.tsdb.path={}", dir.path().join("t").display()),
        &format!("--storage.logs.path={}", dir.path().join("l").display()),
        &format!("--rules.file={}", rules.display()),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("bad.yml"), "the error names the file: {err}");

    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "globl:\n  scrape_interval: 15s\n").unwrap();
    let (code, _, err) = run(&[
        "server",
        "--web.listen-address=127.0.0.1:0",
        &format!("--storage.tsdb.path={}", dir.path().join("t").display()),
        &format!("--storage.logs.path={}", dir.path().join("l").display()),
        &format!("--config.file={}", cfg.display()),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("globl"), "{err}");
}
