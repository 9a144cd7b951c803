//! The router's inference cost: tokenize + encode + select, at batch 1, 8 and 32 and prompt lengths
//! of 8, 32, 128 and 512 tokens, and the decisions per second the worker sustains under 64
//! concurrent requests.
//!
//!     CHERRYPICK_TEST_ENCODER=/path/to/all-MiniLM-L6-v2 cargo bench --bench router
//!
//! Uses `models/router` as the selector. Threads: RAYON_NUM_THREADS (default: all cores).
//! On a GPU: `cargo bench --features cuda --bench router` with `CHERRYPICK_BENCH_DEVICE=cuda`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use cherrypick::router::encoder::{Encoder, EncoderFiles};
use cherrypick::router::selector::Selector;
use cherrypick::router::worker::{BatchPolicy, WorkerHandle};
use cherrypick::telemetry::Metrics;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

// The gateway's allocator: the encoder's buffers are reused rather than mapped afresh each call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn encoder_dir() -> PathBuf {
    std::env::var_os("CHERRYPICK_TEST_ENCODER").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/cherrypick/models/all-MiniLM-L6-v2")
    })
}

fn selector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/router")
}

/// A prompt of exactly `tokens` tokens with [CLS] and [SEP] ("the" is one token).
fn prompt(tokens: usize) -> String {
    vec!["the"; tokens - 2].join(" ")
}

/// The CPU, or the GPU with `CHERRYPICK_BENCH_DEVICE=cuda` (a build with the `cuda` feature).
fn device() -> Device {
    let name = std::env::var("CHERRYPICK_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    cherrypick::router::device::require(&name).expect("CHERRYPICK_BENCH_DEVICE names a usable device")
}

fn load() -> (Encoder, Selector) {
    let files = EncoderFiles::in_folder(&encoder_dir()).expect("encoder folder (set CHERRYPICK_TEST_ENCODER)");
    let device = device();
    let encoder = Encoder::load(&files, 512, &device).expect("encoder");
    let selector = Selector::load(&selector_dir(), &device).expect("models/router");
    (encoder, selector)
}

fn encode(c: &mut Criterion) {
    let (encoder, selector) = load();
    let mut group = c.benchmark_group("route");
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for batch in [1usize, 8, 32] {
        for tokens in [8usize, 32, 128, 512] {
            if batch * tokens > 32 * 128 {
                continue; // 32 × 512 takes seconds per call; 8 × 512 covers long prompts
            }
            let text = prompt(tokens);
            let texts: Vec<&str> = vec![text.as_str(); batch];
            assert_eq!(encoder.tokenize(&texts[..1]).unwrap().lengths[0], tokens);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(format!("batch{batch}"), tokens), &texts, |b, texts| {
                b.iter(|| {
                    let embeddings = encoder.encode(texts).unwrap();
                    black_box(selector.predict(&embeddings, texts.len()).unwrap())
                })
            });
        }
    }
    group.finish();
    let text = prompt(32);
    c.bench_function("tokenize/32", |b| b.iter(|| black_box(encoder.tokenize(&[text.as_str()]).unwrap())));

    // The selector alone (MLP, and the difficulty adjustment with its nearest-anchor search).
    let mut group = c.benchmark_group("select");
    for batch in [1usize, 32] {
        let texts: Vec<&str> = vec![text.as_str(); batch];
        let embeddings = encoder.encode(&texts).unwrap();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &embeddings, |b, embeddings| {
            b.iter(|| black_box(selector.predict(embeddings, batch).unwrap()))
        });
    }
    group.finish();
}

/// One dense layer through the packed kernel, the shapes of MiniLM's feed-forward up projection.
fn dense(c: &mut Criterion) {
    use cherrypick::router::small_matmul::{Packed, Then, available, matmul_bias};
    if !available() {
        return;
    }
    let (k, n) = (384usize, 1536usize);
    let w: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 / 7.0).collect();
    let packed = Packed::new(&w, k, n);
    let bias = vec![0.5f32; n];
    let mut group = c.benchmark_group("dense");
    group.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_secs(1));
    for m in [32usize, 256, 1024] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 / 5.0).collect();
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::new("384x1536", m), |b| {
            b.iter(|| black_box(matmul_bias(&x, &packed, &bias, m, Then::Nothing)))
        });
    }
    group.finish();
}

/// The forward pass alone, candle-transformers' `BertModel` against cherrypick's, same weights and
/// inputs (token ids of "the" × len).
fn forward_ab(c: &mut Criterion) {
    use candle_core::{DType, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::{BertModel, Config};
    use cherrypick::router::bert::Bert;

    let device = device();
    let files = EncoderFiles::in_folder(&encoder_dir()).expect("encoder folder");
    let config: Config = serde_json::from_str(&std::fs::read_to_string(&files.config).unwrap()).unwrap();
    // SAFETY: the weights file is not written while the bench runs.
    let vars = unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &device) }.unwrap();
    let stock = BertModel::load(vars.clone(), &config).unwrap();
    let fast = Bert::load(vars, &config).unwrap();
    let mut group = c.benchmark_group("forward");
    group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (batch, len) in [(1usize, 32usize), (1, 128), (1, 512), (8, 32), (32, 32)] {
        let ids = vec![1996u32; batch * len];
        let mask = vec![1u32; batch * len];
        let ids_t = Tensor::from_vec(ids.clone(), (batch, len), &device).unwrap();
        let mask_t = Tensor::from_vec(mask.clone(), (batch, len), &device).unwrap();
        let types = ids_t.zeros_like().unwrap();
        let name = format!("{batch}x{len}");
        group.bench_function(BenchmarkId::new("candle-transformers", &name), |b| {
            b.iter(|| {
                let hidden = stock.forward(&ids_t, &types, Some(&mask_t)).unwrap();
                device.synchronize().unwrap(); // a GPU runs the kernels after `forward` returns
                black_box(hidden)
            })
        });
        group.bench_function(BenchmarkId::new("cherrypick", &name), |b| {
            b.iter(|| {
                let hidden = fast.forward(&ids, &mask, batch, len).unwrap();
                device.synchronize().unwrap();
                black_box(hidden)
            })
        });
    }
    group.finish();
}

/// The fast tier (a table from `cherrypick models distill`, named by CHERRYPICK_STATIC_TABLE):
/// tokenize + encode at batch 1. Skipped when the variable is unset.
fn static_tier(c: &mut Criterion) {
    let Some(table) = std::env::var_os("CHERRYPICK_STATIC_TABLE") else {
        eprintln!("static tier: set CHERRYPICK_STATIC_TABLE to a distilled table to measure it");
        return;
    };
    let files = EncoderFiles::in_folder(&encoder_dir()).expect("encoder folder");
    let encoder = Encoder::load_static(&files.tokenizer, std::path::Path::new(&table), 512).expect("static table");
    let mut group = c.benchmark_group("static");
    for tokens in [8usize, 32, 128, 512] {
        let text = prompt(tokens);
        group.bench_with_input(BenchmarkId::new("batch1", tokens), &text, |b, text| {
            b.iter(|| black_box(encoder.encode(&[text.as_str()]).unwrap()))
        });
    }
    group.finish();
}

/// Decisions per second with 64 requests always waiting on the worker (32-token prompts).
fn worker(c: &mut Criterion) {
    let (encoder, selector) = load();
    let metrics = Metrics::new();
    let policy = BatchPolicy { max_batch: 32, max_wait: Duration::ZERO, queue: 256 };
    let worker = Arc::new(WorkerHandle::spawn(encoder, selector, policy, metrics.router.clone()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let text = prompt(32);
    let mut group = c.benchmark_group("worker");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(256));
    group.bench_function("64_concurrent/256_decisions", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                runtime.block_on(async {
                    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
                    let mut tasks = Vec::with_capacity(256);
                    for _ in 0..256 {
                        let permit = semaphore.clone().acquire_owned().await.unwrap();
                        let worker = worker.clone();
                        let text = text.clone();
                        tasks.push(tokio::spawn(async move {
                            let scored = worker.submit(text).unwrap().await.unwrap().unwrap();
                            drop(permit);
                            scored
                        }));
                    }
                    for task in tasks {
                        black_box(task.await.unwrap());
                    }
                });
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, forward_ab, dense, encode, static_tier, worker);
criterion_main!(benches);
