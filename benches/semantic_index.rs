//! The embedded vector index at scale: insert rate, lookup latency (p50/p99), recall@1 against
//! exact search, and bytes per entry, with every point in one partition (the worst case: one
//! tenant, one model, one conversation prefix).
//!
//!   cargo bench --bench semantic_index              # 100,000 points
//!   cargo bench --bench semantic_index -- 1000000   # 1,000,000 points (several minutes to build)
//!
//! Points are 384-dimensional unit vectors around 2,000 random topics (real questions cluster the
//! same way); queries are stored points moved slightly, as a reworded question is.

use std::sync::Arc;
use std::time::Instant;

use cherrypick::memory::Key;
use cherrypick::memory::vector::Point;
use cherrypick::memory::vector::embedded::{Embedded, Options};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIMS: usize = 384;

fn unit(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

fn noise(rng: &mut StdRng, scale: f32) -> Vec<f32> {
    (0..DIMS).map(|_| (rng.random::<f32>() - 0.5) * scale).collect()
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: a small smoke run then.
    let benching = std::env::args().any(|a| a == "--bench");
    let default = if benching { 100_000 } else { 5_000 };
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(default);
    let mut rng = StdRng::seed_from_u64(7);
    let topics: Vec<Vec<f32>> = (0..2000)
        .map(|_| {
            let mut t = noise(&mut rng, 1.0);
            unit(&mut t);
            t
        })
        .collect();
    let mut vectors = Vec::with_capacity(n * DIMS);
    for _ in 0..n {
        let topic = &topics[rng.random_range(0..topics.len())];
        let mut v: Vec<f32> = topic.iter().zip(noise(&mut rng, 0.12)).map(|(t, e)| t + e).collect();
        unit(&mut v);
        vectors.extend_from_slice(&v);
    }

    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let defaults = Options::default();
    let quantization = match std::env::var("QUANT").as_deref() {
        Ok("f32") => usearch::ScalarKind::F32,
        Ok("i8") => usearch::ScalarKind::I8,
        Ok("bf16") => usearch::ScalarKind::BF16,
        _ => defaults.quantization,
    };
    let options = Options {
        dimensions: DIMS,
        expansion_search: env("EF_SEARCH").unwrap_or(defaults.expansion_search),
        expansion_add: env("EF_ADD").unwrap_or(defaults.expansion_add),
        quantization,
        ..defaults
    };
    let index = Embedded::in_memory(options);
    let partition = Key([1; 32]);
    let started = Instant::now();
    for (i, v) in vectors.chunks_exact(DIMS).enumerate() {
        let mut answer = [0u8; 32];
        answer[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let text = format!("stored question number {i}");
        let point = Point { partition, answer: Key(answer), vector: Arc::from(v), text, expires: i64::MAX };
        index.insert_local(point).expect("insert");
    }
    let build = started.elapsed();
    let (bytes, points) = index.footprint();

    let queries = if benching { 2000 } else { 50 };
    let mut latencies = Vec::with_capacity(queries);
    let mut agree = 0;
    for _ in 0..queries {
        let base = rng.random_range(0..n);
        let mut q: Vec<f32> =
            vectors[base * DIMS..(base + 1) * DIMS].iter().zip(noise(&mut rng, 0.03)).map(|(v, e)| v + e).collect();
        unit(&mut q);
        let started = Instant::now();
        let found = index.nearest_local(&partition, &q).expect("a neighbour");
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        let exact = vectors
            .chunks_exact(DIMS)
            .map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
            .expect("points");
        if found.answer.short() as usize == exact {
            agree += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!("points: {points}");
    println!("build: {:.1} s ({:.0} inserts/s)", build.as_secs_f64(), n as f64 / build.as_secs_f64());
    println!("lookup: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs", pct(0.50), pct(0.99), pct(1.0));
    println!("recall@1 vs exact: {:.4} ({agree}/{queries})", agree as f64 / queries as f64);
    println!(
        "bytes per entry: {:.0} (index, metadata and text; log on disk: {} per entry + text)",
        bytes as f64 / points as f64,
        72 + DIMS * 2 + 4
    );
}
