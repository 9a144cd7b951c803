//! The encoder reproduces sentence-transformers: the reference vectors in
//! tests/fixtures/minilm_reference.json were computed with it (training/reference_embeddings.py).

mod common;

use candle_core::Device;
use cherrypick::router::encoder::{Encoder, EncoderFiles};

fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm_reference.json"))
        .expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    let texts = serde_json::from_value(json["texts"].clone()).expect("texts");
    let embeddings = serde_json::from_value(json["embeddings"].clone()).expect("embeddings");
    (texts, embeddings)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn encoder() -> Encoder {
    let files = EncoderFiles::in_folder(&common::encoder_dir()).expect("encoder files");
    Encoder::load(&files, 256, &Device::Cpu).expect("encoder loads")
}

#[test]
fn embeddings_match_sentence_transformers_one_by_one_and_batched() {
    let encoder = encoder();
    assert_eq!(encoder.dim(), 384);
    let (texts, expected) = reference();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Batched: inputs of different lengths share one padded batch.
    let batched = encoder.encode(&refs).expect("encodes");
    for (i, text) in refs.iter().enumerate() {
        let single = encoder.encode(&[text]).expect("encodes");
        let row = &batched[i * 384..(i + 1) * 384];
        let norm: f32 = single.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
        for (how, got) in [("alone", &single[..]), ("batched", row)] {
            let c = cosine(got, &expected[i]);
            assert!(c >= 0.999, "text {i} {how}: cosine {c} < 0.999");
        }
    }
}

#[test]
fn the_tokenizer_pads_to_the_longest_input_and_truncates() {
    let encoder = encoder();
    let tokens = encoder.tokenize(&["short", "a somewhat longer input text"]).expect("tokenizes");
    assert_eq!(tokens.lengths, [3, 7]); // [CLS] … [SEP]
    assert_eq!(tokens.padded_len(), 7, "padded to the batch's longest, not 128");
    let long = "word ".repeat(1000);
    let tokens = encoder.tokenize(&[long.as_str()]).expect("tokenizes");
    assert_eq!(tokens.lengths, [256]);
}
