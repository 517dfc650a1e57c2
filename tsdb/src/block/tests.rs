//! Blocks written and read back, and each kind of damage found on open.

use super::writer::{self, NewBlock};
use super::*;
use model::MatchOp;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

fn series(i: usize, n: i64) -> (Labels, Vec<Sample>) {
    let labels = Labels::from_pairs([
        ("__name__", format!("m{}", i % 3)),
        ("instance", format!("host-{i:03}")),
    ]);
    // Counters, fractions and a NaN so both chunk encodings and raw bits are exercised.
    let samples = (0..n)
        .map(|t| Sample {
            t: t * 15_000,
            v: match i % 3 {
                0 => (t * 7) as f64,
                1 => t as f64 / 100.0,
                _ => f64::from_bits(0x7ff0_0000_0000_0002 + t as u64),
            },
        })
        .collect();
    (labels, samples)
}

fn fixture(n_series: usize, n_samples: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut all: Vec<_> = (0..n_series).map(|i| series(i, n_samples)).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Writes the fixture as a block in `parent` and returns its directory.
fn write_block(parent: &Path, data: &[(Labels, Vec<Sample>)]) -> PathBuf {
    let ulid = meta::new_ulid();
    let new = NewBlock {
        ulid: ulid.clone(),
        min_time: 0,
        max_time: 7_200_000,
        compaction: Compaction {
            level: 1,
            sources: vec![ulid.clone()],
            parents: Vec::new(),
        },
    };
    let items = data.iter().cloned().map(Ok);
    let meta = writer::write(parent, new, items).unwrap().unwrap();
    assert_eq!(meta.ulid, ulid);
    parent.join(ulid)
}

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
}

#[test]
fn written_block_reads_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(30, 300);
    let block = Block::open(&write_block(dir.path(), &data)).unwrap();
    let stats = &block.meta.stats;
    assert_eq!((stats.num_series, stats.num_samples), (30, 30 * 300));
    assert_eq!(
        stats.num_chunks,
        30 * 3,
        "300 samples make chunks of 120, 120, 60"
    );

    let all = block.select(i64::MIN, i64::MAX, &[]).unwrap();
    assert_eq!(all.len(), data.len());
    for (got, (labels, samples)) in all.iter().zip(&data) {
        assert_eq!(&got.labels, labels);
        assert_eq!(bits(&got.samples), bits(samples));
    }
    // Matchers go through the postings; results stay in label order, ranges are inclusive.
    let m1 = Matcher::new(MatchOp::Equal, "__name__", "m1").unwrap();
    let not7 = Matcher::new(MatchOp::NotRegex, "instance", "host-0.7").unwrap();
    let got = block.select(15_000, 30_000, &[m1.clone(), not7]).unwrap();
    assert_eq!(got.len(), 10 - 1);
    assert!(got.iter().all(|s| s.samples.len() == 2));
    assert!(got.windows(2).all(|w| w[0].labels < w[1].labels));
    let names = block.label_names(i64::MIN, i64::MAX, &[]).unwrap();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["__name__", "instance"]
    );
    let values = block.label_values("__name__", 0, 10, &[m1]).unwrap();
    assert_eq!(values.into_iter().collect::<Vec<_>>(), ["m1"]);
    // A range between two samples has no series, though chunks overlap it.
    assert!(block.series(1, 14_999, &[]).unwrap().is_empty());
    assert_eq!(block.series(1, 15_000, &[]).unwrap().len(), 30);
}

/// Opens the block after `damage`, expecting a corruption error that mentions `what`.
fn assert_refused(damage: impl FnOnce(&Path), what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_block(dir.path(), &fixture(5, 200));
    damage(&path);
    match Block::open(&path) {
        Err(e @ (Error::CorruptBlock { .. } | Error::Io { .. })) => {
            assert!(e.to_string().contains(what), "{e} should mention {what}")
        }
        other => panic!("damaged block opened: {other:?}"),
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    std::io::Read::read_exact(&mut f, &mut byte).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[byte[0] ^ 0x20]).unwrap();
}

#[test]
fn damaged_blocks_are_refused_on_open() {
    assert_refused(
        |b| flip_byte(&b.join("chunks/000001"), 100),
        "checksum mismatch",
    );
    assert_refused(|b| std::fs::remove_file(b.join("index")).unwrap(), "index");
    assert_refused(
        |b| {
            let text = std::fs::read(b.join("meta.json")).unwrap();
            std::fs::write(b.join("meta.json"), &text[..text.len() / 3]).unwrap();
        },
        "meta.json",
    );
    assert_refused(|b| flip_byte(&b.join("index"), 40), "checksum mismatch");
    assert_refused(
        |b| {
            let f = OpenOptions::new()
                .write(true)
                .open(b.join("index"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - 10).unwrap();
        },
        "postings section",
    );
    // A chunk file cut short: the frames left are intact, but the index points past them.
    assert_refused(
        |b| {
            let f = OpenOptions::new()
                .write(true)
                .open(b.join("chunks/000001"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        },
        "chunk",
    );
}

#[test]
fn a_newer_block_version_is_an_unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_block(dir.path(), &fixture(2, 10));
    let text = std::fs::read_to_string(path.join("meta.json")).unwrap();
    let text = text.replace("\"version\": 1", "\"version\": 2");
    std::fs::write(path.join("meta.json"), text).unwrap();
    assert!(matches!(
        Block::open(&path),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
}
