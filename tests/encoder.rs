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

/// The CPU, or the GPU with `CHERRYPICK_TEST_DEVICE=cuda` (a build with the `cuda` feature).
fn device() -> Device {
    let name = std::env::var("CHERRYPICK_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    cherrypick::router::device::require(&name).expect("CHERRYPICK_TEST_DEVICE names a usable device")
}

fn encoder() -> Encoder {
    let files = EncoderFiles::in_folder(&common::encoder_dir()).expect("encoder files");
    Encoder::load(&files, 256, &device()).expect("encoder loads")
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

/// The fast forward pass computes what candle-transformers' BertModel computes, padding included.
#[test]
fn the_fast_forward_pass_matches_candle_transformers() {
    use candle_core::{DType, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::{BertModel, Config};
    use cherrypick::router::bert::{Bert, mean_pool_normalised};

    let files = EncoderFiles::in_folder(&common::encoder_dir()).expect("encoder files");
    let config: Config = serde_json::from_str(&std::fs::read_to_string(&files.config).unwrap()).unwrap();
    // SAFETY: test-only read of a file nobody writes.
    let vars = unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &Device::Cpu) }.unwrap();
    let reference = BertModel::load(vars.clone(), &config).unwrap();
    let fast = Bert::load(vars, &config).unwrap();
    let encoder = encoder();
    let long = "a longer prompt about routing requests between language models ".repeat(12);
    let tokens = encoder.tokenize(&["short one", long.as_str(), "medium length input text here"]).unwrap();
    let (batch, len) = (3, tokens.padded_len());
    let ours = encoder.encode(&["short one", long.as_str(), "medium length input text here"]).unwrap();

    let ids: Vec<u32> = (0..batch).flat_map(|b| tokens.ids_row(b)).collect();
    let mask: Vec<u32> = (0..batch).flat_map(|b| tokens.mask_row(b)).collect();
    let ids_t = Tensor::from_vec(ids.clone(), (batch, len), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_vec(mask.clone(), (batch, len), &Device::Cpu).unwrap();
    let hidden = reference.forward(&ids_t, &ids_t.zeros_like().unwrap(), Some(&mask_t)).unwrap();
    let theirs = mean_pool_normalised(&hidden, &mask_t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let fast_hidden = fast.forward(&ids, &mask, batch, len).unwrap();
    assert_eq!(fast_hidden.dims(), hidden.dims());
    for row in 0..batch {
        let c = cosine(&ours[row * 384..(row + 1) * 384], &theirs[row * 384..(row + 1) * 384]);
        assert!(c > 0.99999, "row {row}: cosine {c}");
    }
}

/// The fast tier: a one-token prompt's static embedding is that token's BERT sentence embedding,
/// and a longer prompt's is the normalised mean of its tokens' rows.
#[test]
fn the_static_tier_is_the_mean_of_distilled_token_rows() {
    use cherrypick::router::static_table::StaticTable;

    let bert = encoder();
    let dir = std::env::temp_dir().join(format!("cherrypick-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let words = ["hello", "world", "routing"];
    let tokens = bert.tokenize(&words).unwrap();
    let ids: Vec<u32> = (0..words.len()).map(|row| tokens.ids_row(row)[1]).collect();
    assert!(tokens.lengths.iter().all(|&n| n == 3), "each word is one token");
    let distilled = bert.token_embeddings(&ids).unwrap();
    // A table with only these rows filled is enough for prompts made of these words.
    let mut rows = vec![0f32; bert.vocab_size() * 384];
    for (k, &id) in ids.iter().enumerate() {
        rows[id as usize * 384..(id as usize + 1) * 384].copy_from_slice(&distilled[k * 384..(k + 1) * 384]);
    }
    let path = dir.join("static.safetensors");
    StaticTable::new(rows, 384, bert.special_ids()).save(&path).unwrap();
    let files = EncoderFiles::in_folder(&common::encoder_dir()).unwrap();
    let fast = Encoder::load_static(&files.tokenizer, &path, 256).unwrap();
    assert!(fast.is_static() && fast.dim() == 384);

    let one = fast.encode(&["hello"]).unwrap();
    assert!(cosine(&one, &bert.encode(&["hello"]).unwrap()) > 0.9999);
    let three = fast.encode(&["hello world routing"]).unwrap();
    let mean: Vec<f32> = (0..384).map(|d| (0..3).map(|k| distilled[k * 384 + d]).sum()).collect();
    assert!(cosine(&three, &mean) > 0.9999);
    let norm: f32 = three.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}
