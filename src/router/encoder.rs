//! The sentence encoder: a BERT-family model (all-MiniLM-L6-v2 by default) run with candle, mean
//! pooled over the attention mask and L2-normalised, as sentence-transformers does.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config as BertConfig;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use super::RouterError;
use super::bert::{Bert, mean_pool_normalised};

/// The three files of a model folder in Hugging Face layout.
#[derive(Debug, Clone)]
pub struct EncoderFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
}

impl EncoderFiles {
    pub const NAMES: [&'static str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

    /// The files of a local folder; every one must exist.
    pub fn in_folder(dir: &Path) -> Result<Self, RouterError> {
        let [config, weights, tokenizer] = Self::NAMES.map(|name| dir.join(name));
        for path in [&config, &weights, &tokenizer] {
            if !path.is_file() {
                return Err(RouterError::Load(format!("{} is missing", path.display())));
            }
        }
        Ok(Self { config, weights, tokenizer })
    }
}

pub struct Encoder {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
}

/// Token ids of one batch, padded to its longest member.
pub struct Tokens {
    ids: Vec<u32>,
    mask: Vec<u32>,
    batch: usize,
    len: usize,
    /// Real (unpadded) length of each input.
    pub lengths: Vec<usize>,
}

impl Tokens {
    pub fn padded_len(&self) -> usize {
        self.len
    }

    pub fn ids_row(&self, row: usize) -> Vec<u32> {
        self.ids[row * self.len..(row + 1) * self.len].to_vec()
    }

    pub fn mask_row(&self, row: usize) -> Vec<u32> {
        self.mask[row * self.len..(row + 1) * self.len].to_vec()
    }
}

impl Encoder {
    /// Loads the model; inputs longer than `max_tokens` are truncated.
    pub fn load(files: &EncoderFiles, max_tokens: usize, device: &Device) -> Result<Self, RouterError> {
        let load = |what: &str, e: &dyn std::fmt::Display| RouterError::Load(format!("{what}: {e}"));
        let config_text = std::fs::read_to_string(&files.config).map_err(|e| load("config.json", &e))?;
        let config: BertConfig = serde_json::from_str(&config_text).map_err(|e| load("config.json", &e))?;
        let dim = config.hidden_size;
        // SAFETY: the weights file is memory-mapped read-only; cherrypick never writes it while running.
        let vars = unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, device) }
            .map_err(|e| load("model.safetensors", &e))?;
        let model = Bert::load(vars, &config).map_err(|e| load("model.safetensors", &e))?;

        let mut tokenizer = Tokenizer::from_file(&files.tokenizer).map_err(|e| load("tokenizer.json", &e))?;
        // The shipped tokenizer.json pads every input to 128 tokens; pad a batch to its longest input
        // only, and cut long inputs at `max_tokens`.
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|e| load("tokenizer.json", &e))?;
        Ok(Self { model, tokenizer, device: device.clone(), dim })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn tokenize(&self, texts: &[&str]) -> Result<Tokens, RouterError> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| RouterError::Encode(e.to_string()))?;
        let batch = encodings.len();
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        let mut lengths = Vec::with_capacity(batch);
        for encoding in &encodings {
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
            lengths.push(encoding.get_attention_mask().iter().filter(|&&m| m == 1).count());
        }
        Ok(Tokens { ids, mask, batch, len, lengths })
    }

    /// One L2-normalised embedding per text, `dim` floats each, row after row.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<f32>, RouterError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tokens = self.tokenize(texts)?;
        self.encode_tokens(&tokens)
    }

    pub fn encode_tokens(&self, tokens: &Tokens) -> Result<Vec<f32>, RouterError> {
        let run = || -> candle_core::Result<Vec<f32>> {
            let hidden = self.model.forward(&tokens.ids, &tokens.mask, tokens.batch, tokens.len)?;
            let mask = Tensor::from_slice(&tokens.mask, (tokens.batch, tokens.len), &self.device)?;
            mean_pool_normalised(&hidden, &mask)?.flatten_all()?.to_vec1::<f32>()
        };
        run().map_err(|e| RouterError::Encode(e.to_string()))
    }
}
