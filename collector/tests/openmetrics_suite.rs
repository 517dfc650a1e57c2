//! The OpenMetrics project's parser test suite (`../shared/openmetrics/testdata/`, 211 cases):
//! each case is a `metrics` body and a `test.json` verdict, and our OpenMetrics parser must
//! accept exactly the bodies marked `shouldParse: true`.

use std::path::PathBuf;

use collector::expo::{parse_bytes, Format};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/openmetrics/testdata")
}

#[test]
fn every_openmetrics_parser_case_gets_its_verdict() {
    let dir = testdata();
    if !dir.is_dir() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "OpenMetrics testdata missing at {}",
            dir.display()
        );
        println!(
            "skipped: OpenMetrics testdata not found at {}",
            dir.display()
        );
        return;
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("test.json").is_file())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 211, "the suite has 211 cases");
    let mut wrong = Vec::new();
    for case in &cases {
        let verdict: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        assert_eq!(verdict["type"], "text");
        let should_parse = verdict["shouldParse"].as_bool().unwrap();
        let body = std::fs::read(case.join("metrics")).unwrap();
        let got = parse_bytes(&body, Format::OpenMetrics);
        if got.is_ok() != should_parse {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            wrong.push(format!(
                "{name}: want shouldParse={should_parse}, got {got:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}
