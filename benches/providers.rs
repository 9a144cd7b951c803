//! Provider conversion cost, per provider, on the conformance fixtures' recorded bodies:
//! - `encode/<provider>`: an OpenAI chat request (the `tools` scenario's) to the provider's body;
//! - `stream/<provider>`: the provider's recorded stream (the `stream` scenario's, its first text
//!   delta repeated to 64 extra events) decoded and translated to OpenAI chunks, per upstream event.
//!
//! Then a table of what one more text-delta event costs in heap allocations and bytes, measured with
//! a counting allocator as the difference between the stream with 64 and with 128 extra deltas, next
//! to the size of the chunk it becomes. The budget is one allocation per chunk, its own buffer (none
//! where the chunk is a slice of the upstream's bytes): the run fails if a provider needs more.
//!
//! `cargo bench --bench providers` (a smoke run without `--bench` under `cargo test --all-targets`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cherrypick::config::{ProviderConfig, ProviderKind, load_str};
use cherrypick::openai::ChatCompletionRequest;
use cherrypick::providers::native::Codec;
use cherrypick::providers::{Reply, anthropic, bedrock, cohere, gemini, openai_compat};
use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use serde_json::Value;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PROVIDERS: &[&str] = &[
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "vertex_ai",
    "bedrock",
    "cohere",
    "mistral",
    "groq",
    "together",
    "fireworks",
    "deepseek",
    "xai",
    "perplexity",
    "openrouter",
    "cerebras",
    "deepinfra",
    "ollama",
    "vllm",
    "huggingface",
];

/// One provider's recorded material.
struct Fixture {
    provider: &'static str,
    config: ProviderConfig,
    /// The `tools` scenario's request (the `multi_turn` one for a provider without tools).
    tools: ChatCompletionRequest,
    multi_turn: ChatCompletionRequest,
    stream_request: ChatCompletionRequest,
    content_type: &'static str,
    /// The stream's events in wire form, and which one is the text delta to repeat.
    events: Vec<Vec<u8>>,
    delta: usize,
}

fn fixtures_dir(provider: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(provider)
}

fn scenario(provider: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir(provider).join(format!("{name}.json"))).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn load(provider: &'static str) -> Fixture {
    let dir = fixtures_dir(provider);
    let mut toml = std::fs::read_to_string(dir.join("provider.toml")).expect("provider.toml");
    if let Ok(account) = std::fs::read_to_string(dir.join("service_account.json")) {
        let path = std::env::temp_dir().join(format!("cherrypick-bench-{provider}.json"));
        std::fs::write(&path, account.replace("{base_url}", "http://127.0.0.1:9")).expect("write key");
        toml = toml.replace("{credentials_file}", &path.display().to_string());
    }
    let toml = toml.replace("{base_url}", "http://127.0.0.1:9");
    let config = load_str(&toml, "bench", &[]).expect("provider config").config.providers["p"].clone();
    let request = |name: &str| serde_json::from_value(scenario(provider, name)["request"].clone()).expect("request");
    let reply = scenario(provider, "stream")["reply"].clone();
    if let Some(frames) = reply.get("eventstream") {
        let frames = frames.as_array().expect("frames");
        let events: Vec<Vec<u8>> = frames.iter().map(eventstream_frame).collect();
        let delta =
            frames.iter().position(|f| f["event"] == "contentBlockDelta" && f["payload"]["delta"]["text"].is_string());
        return Fixture {
            provider,
            config,
            tools: request("tools"),
            multi_turn: request("multi_turn"),
            stream_request: request("stream"),
            content_type: "application/vnd.amazon.eventstream",
            events,
            delta: delta.expect("a text delta"),
        };
    }
    let events: Vec<Vec<u8>> = match &reply["sse"] {
        Value::Array(events) => events.iter().map(|e| format!("{}\n\n", e.as_str().unwrap()).into_bytes()).collect(),
        Value::String(text) => text.split_inclusive("\n\n").map(|e| e.as_bytes().to_vec()).collect(),
        other => panic!("{provider}: no stream reply: {other}"),
    };
    let delta = events.iter().position(|e| is_text_delta(e)).unwrap_or_else(|| panic!("{provider}: no text delta"));
    Fixture {
        provider,
        config,
        tools: request("tools"),
        multi_turn: request("multi_turn"),
        stream_request: request("stream"),
        content_type: "text/event-stream",
        events,
        delta,
    }
}

/// Whether an event carries a piece of answer text and no finish reason, so that repeating it only
/// lengthens the answer.
fn is_text_delta(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    let Some(data) = text.lines().find_map(|line| line.strip_prefix("data:")) else { return false };
    let Ok(data) = serde_json::from_str::<Value>(data.trim()) else { return false };
    let openai = &data["choices"][0];
    let openai =
        openai["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()) && openai["finish_reason"].is_null();
    let anthropic = data["delta"]["type"] == "text_delta";
    let cohere = data["type"] == "content-delta";
    let gemini = data["candidates"][0]["content"]["parts"][0]["text"].is_string()
        && data["candidates"][0]["finishReason"].is_null();
    openai || anthropic || cohere || gemini
}

fn eventstream_frame(frame: &Value) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let payload = serde_json::to_vec(&frame["payload"]).expect("payload");
    let string = |v: &str| HeaderValue::String(v.to_owned().into());
    let mut message = Message::new(payload).add_header(Header::new(":content-type", string("application/json")));
    message = match frame["event"].as_str() {
        Some(event) => message
            .add_header(Header::new(":event-type", string(event)))
            .add_header(Header::new(":message-type", string("event"))),
        None => message
            .add_header(Header::new(":exception-type", string(frame["exception"].as_str().expect("exception"))))
            .add_header(Header::new(":message-type", string("exception"))),
    };
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).expect("frame");
    out
}

impl Fixture {
    /// The recorded stream with its text delta repeated `extra` more times.
    fn body(&self, extra: usize) -> (Bytes, usize) {
        let mut body = Vec::new();
        for (i, event) in self.events.iter().enumerate() {
            let times = if i == self.delta { extra + 1 } else { 1 };
            for _ in 0..times {
                body.extend_from_slice(event);
            }
        }
        (Bytes::from(body), self.events.len() + extra)
    }
}

fn response(content_type: &str, body: Bytes) -> reqwest::Response {
    let response = http::Response::builder().status(200).header("content-type", content_type).body(body);
    reqwest::Response::from(response.expect("response"))
}

/// Decodes and translates a whole stream; the chunks and their total size.
async fn drain<C: Codec>(
    codec: &C,
    request: &ChatCompletionRequest,
    content_type: &str,
    body: Bytes,
) -> (usize, usize) {
    let (_, context) = codec.encode(request).expect("encodes");
    let Ok(Reply::Stream(mut chunks)) = codec.decode(request, context, response(content_type, body)).await else {
        panic!("not a stream");
    };
    let (mut count, mut size) = (0, 0);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("a chunk");
        count += 1;
        size += chunk.len();
    }
    (count, size)
}

struct Cost {
    provider: &'static str,
    allocations: f64,
    bytes: f64,
    chunk: f64,
}

fn measure<C: Codec>(c: &mut Criterion, rt: &tokio::runtime::Runtime, codec: &C, fixture: &Fixture) -> Cost {
    let name = fixture.provider;
    let request = [&fixture.tools, &fixture.multi_turn].into_iter().find(|r| codec.encode(r).is_ok()).expect("encodes");
    c.bench_function(&format!("encode/{name}"), |b| b.iter(|| codec.encode(black_box(request)).expect("encodes")));
    let (body, events) = fixture.body(64);
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function(name, |b| {
        b.iter(|| rt.block_on(drain(codec, &fixture.stream_request, fixture.content_type, body.clone())))
    });
    group.finish();

    let counted = |extra: usize| {
        let (body, _) = fixture.body(extra);
        let (a0, b0) = (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
        let (chunks, size) = rt.block_on(drain(codec, &fixture.stream_request, fixture.content_type, body));
        (ALLOCATIONS.load(Ordering::Relaxed) - a0, BYTES.load(Ordering::Relaxed) - b0, chunks, size)
    };
    let (a1, b1, c1, s1) = counted(64);
    let (a2, b2, c2, s2) = counted(128);
    assert_eq!(c2 - c1, 64, "{name}: each repeated text delta makes one chunk");
    Cost {
        provider: name,
        allocations: (a2 - a1) as f64 / 64.0,
        bytes: (b2 - b1) as f64 / 64.0,
        chunk: (s2 - s1) as f64 / 64.0,
    }
}

fn run(c: &mut Criterion, rt: &tokio::runtime::Runtime, fixture: &Fixture) -> Cost {
    let client = reqwest::Client::new();
    let (name, config) = ("p", &fixture.config);
    match config.kind {
        ProviderKind::Anthropic => measure(c, rt, &anthropic::Anthropic::new(name, config, client), fixture),
        ProviderKind::Gemini | ProviderKind::VertexAi => {
            measure(c, rt, &gemini::Gemini::new(name, config, client), fixture)
        }
        ProviderKind::Bedrock => measure(c, rt, &bedrock::Bedrock::new(name, config, client), fixture),
        ProviderKind::Cohere => measure(c, rt, &cohere::Cohere::new(name, config, client), fixture),
        _ => measure(c, rt, &openai_compat::OpenAiCompatible::new(name, config, client), fixture),
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let costs: Vec<Cost> = PROVIDERS.iter().map(|p| run(&mut criterion, &rt, &load(p))).collect();
    criterion.final_summary();
    println!("\nOne more text-delta event, per provider (heap allocations and bytes, and the chunk it becomes):");
    println!("{:<12} {:>8} {:>8} {:>8}", "provider", "allocs", "bytes", "chunk");
    let mut over = Vec::new();
    for cost in &costs {
        println!("{:<12} {:>8.2} {:>8.0} {:>8.0}", cost.provider, cost.allocations, cost.bytes, cost.chunk);
        if cost.allocations > 1.0 {
            over.push(cost.provider);
        }
    }
    assert!(over.is_empty(), "more than one allocation per chunk: {over:?}");
}
