//! Synthetic series shaped like node_exporter and cAdvisor data, shared by the benches:
//! constants, integer byte and packet counters, CPU-seconds counters with two decimals, and
//! slowly moving gauges, scraped every 15 s with a few milliseconds of jitter.

use model::Sample;

/// The shapes of series, with their share of a node_exporter scrape.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `node_filesystem_size_bytes`, `up`, info metrics: never change.
    Constant,
    /// `node_network_receive_bytes_total`: integers growing by a noisy rate.
    IntCounter,
    /// `node_cpu_seconds_total`: two decimals, growing by about the interval.
    CpuCounter,
    /// `node_memory_MemAvailable_bytes`: integers wandering slowly.
    IntGauge,
    /// `node_load1`: two decimals wandering slowly.
    DecimalGauge,
    /// Ratios and rates computed by exporters: full-precision floats.
    FloatGauge,
}

pub const MIX: [(Shape, usize); 6] = [
    (Shape::Constant, 25),
    (Shape::IntCounter, 30),
    (Shape::CpuCounter, 20),
    (Shape::IntGauge, 10),
    (Shape::DecimalGauge, 10),
    (Shape::FloatGauge, 5),
];

/// xorshift64*: deterministic noise.
#[derive(Debug)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }
    pub fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` samples of one series of `shape`, every 15 s from a fixed start.
pub fn series(shape: Shape, n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Noise::new(seed);
    let mut t = 1_700_000_000_000i64 + rng.below(15_000) as i64;
    let mut int: i64 = 1_000_000 + rng.below(1 << 40) as i64;
    let mut cents: i64 = rng.below(100_000_000) as i64;
    let mut x: f64 = rng.unit();
    let rate = 1 + rng.below(2_000_000) as i64;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = match shape {
            Shape::Constant => 107_374_182_400.0,
            Shape::IntCounter => {
                int += rng.below(rate as u64 * 2) as i64;
                int as f64
            }
            Shape::CpuCounter => {
                cents += 1_490 + rng.below(20) as i64;
                cents as f64 / 100.0
            }
            Shape::IntGauge => {
                if rng.below(4) == 0 {
                    int += (rng.below(64) as i64 - 32) * 4096;
                }
                int as f64
            }
            Shape::DecimalGauge => {
                cents = (cents % 10_000 + rng.below(21) as i64 - 10).abs();
                cents as f64 / 100.0
            }
            Shape::FloatGauge => {
                x = (x + (rng.unit() - 0.5) * 0.01).abs();
                x
            }
        };
        out.push(Sample { t, v });
        t += 15_000 + rng.below(7) as i64 - 3;
    }
    out
}

/// One series per shape instance in the mix proportions, `per_shape_scale` times over.
pub fn mix(per_shape_scale: usize, n: usize) -> Vec<(Shape, Vec<Sample>)> {
    let mut out = Vec::new();
    let mut seed = 1;
    for (shape, share) in MIX {
        for _ in 0..share * per_shape_scale {
            seed += 1;
            out.push((shape, series(shape, n, seed)));
        }
    }
    out
}
