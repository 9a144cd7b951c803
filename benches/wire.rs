//! Hot-path micro-benchmarks: parsing and re-serialising requests, relaying SSE chunks, reading usage.
//! `cargo bench --bench wire`

use std::hint::black_box;

use cherrypick::http::json::parse;
use cherrypick::openai::{ChatCompletionRequest, Usage};
use cherrypick::providers::sse::{SseDecoder, data_frame};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SMALL: &str = r#"{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0}"#;

const RICH: &str = r#"{"model":"gpt-4o","messages":[{"role":"developer","content":"Answer with JSON."},{"role":"user","content":[{"type":"text","text":"What is in this image and what is the weather there?"},{"type":"image_url","image_url":{"url":"https://example.com/photo.jpg","detail":"low"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C, sunny"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto","response_format":{"type":"json_object"},"temperature":0.2,"seed":7,"stream":true,"stream_options":{"include_usage":true},"user":"u-42","metadata":{"team":"search"},"reasoning_effort":"low"}"#;

fn stream_body() -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..11 {
        let chunk = format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"delta":{{"content":"token{i} "}},"finish_reason":null}}]}}"#
        );
        body.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    body.extend_from_slice(b"data: [DONE]\n\n");
    body
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    for (name, body) in [("small", SMALL), ("rich", RICH)] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| parse::<ChatCompletionRequest>(black_box(body.as_bytes())).expect("valid"))
        });
        let request: ChatCompletionRequest = parse(body.as_bytes()).expect("valid");
        group.bench_function(format!("serialise/{name}"), |b| {
            b.iter(|| serde_json::to_vec(black_box(&request)).expect("serialisable"))
        });
    }
    group.finish();
}

fn stream(c: &mut Criterion) {
    let body = stream_body();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(body.len() as u64));
    // What the gateway does per upstream stream: decode events, scan for usage, frame them again.
    group.bench_function("relay/11-chunks", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::default();
            let mut out = 0;
            for piece in black_box(&body).chunks(512) {
                decoder.push(piece);
                while let Some(event) = decoder.next_event() {
                    if &event.data[..] != b"[DONE]" {
                        black_box(Usage::find_in(&event.data));
                        out += data_frame(&event.data).len();
                    }
                }
            }
            out
        })
    });
    let completion = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed benchmark response from the fake upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40}}"#;
    group.bench_function("usage/json-answer", |b| b.iter(|| Usage::from_response(black_box(completion))));
    group.finish();
}

criterion_group!(benches, requests, stream);
criterion_main!(benches);
