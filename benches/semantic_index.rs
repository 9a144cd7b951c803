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
        expansion_add: env("EF_ADD").unwrap_or(defaults.expansion_add),
        connectivity: env("CONNECTIVITY").unwrap_or(defaults.connectivity),
        quantization,
        ..defaults
    };
    let options_search = options.expansion_search;
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
    let asked: Vec<f32> = (0..queries)
        .flat_map(|_| {
            let base = rng.random_range(0..n);
            let mut q: Vec<f32> =
                vectors[base * DIMS..(base + 1) * DIMS].iter().zip(noise(&mut rng, 0.03)).map(|(v, e)| v + e).collect();
            unit(&mut q);
            q
        })
        .collect();
    let exact = exact_nearest(&asked, &vectors);
    println!("points: {points}");
    println!("build: {:.1} s ({:.0} inserts/s)", build.as_secs_f64(), n as f64 / build.as_secs_f64());
    println!(
        "bytes per entry: {:.0} (index, metadata and text; log on disk: {} per entry + text)",
        bytes as f64 / points as f64,
        72 + DIMS * 2 + 4
    );
    // `EF_SEARCH=64,96,128` measures each breadth over the same graph and queries.
    let breadths: Vec<usize> = std::env::var("EF_SEARCH")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![options_search]);
    for breadth in breadths {
        index.set_expansion_search(breadth);
        measure(&index, &partition, &asked, &exact, breadth);
    }
}

/// Lookup latency and recall@1 of `asked` against the exact answers.
fn measure(index: &Embedded, partition: &Key, asked: &[f32], exact: &[usize], breadth: usize) {
    let mut latencies = Vec::with_capacity(exact.len());
    let mut found = Vec::with_capacity(exact.len());
    for q in asked.chunks_exact(DIMS) {
        let started = Instant::now();
        let neighbour = index.nearest_local(partition, q).expect("a neighbour");
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        found.push(neighbour.answer.short() as usize);
    }
    let agree = found.iter().zip(exact).filter(|(f, e)| f == e).count();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "ef_search {breadth}: lookup p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; recall@1 vs exact {:.4} ({agree}/{})",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        agree as f64 / exact.len() as f64,
        exact.len()
    );
}

/// The exact nearest point of each query: one matrix product per block of points, so a million
/// points and 2,000 queries take seconds rather than a scan per query.
fn exact_nearest(queries: &[f32], points: &[f32]) -> Vec<usize> {
    use candle_core::{Device, Tensor};
    const BLOCK: usize = 16_384;
    let asked = queries.len() / DIMS;
    let q = Tensor::from_slice(queries, (asked, DIMS), &Device::Cpu).expect("queries");
    let mut best = vec![(f32::NEG_INFINITY, 0usize); asked];
    for (b, block) in points.chunks(BLOCK * DIMS).enumerate() {
        let p = Tensor::from_slice(block, (block.len() / DIMS, DIMS), &Device::Cpu).expect("points");
        let scores = q.matmul(&p.t().expect("transpose")).expect("scores");
        let top = scores.max_keepdim(1).and_then(|t| t.flatten_all()?.to_vec1::<f32>()).expect("max");
        let at = scores.argmax_keepdim(1).and_then(|t| t.flatten_all()?.to_vec1::<u32>()).expect("argmax");
        for ((best, score), i) in best.iter_mut().zip(top).zip(at) {
            if score > best.0 {
                *best = (score, b * BLOCK + i as usize);
            }
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}
