//! The sentence encoder: a BERT-family model (all-MiniLM-L6-v2 by default) run with candle, mean
//! pooled over the attention mask and L2-normalised, as sentence-transformers does.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config as BertConfig;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use super::RouterError;
use super::bert::{Bert, mean_pool_normalised};
use super::static_table::StaticTable;

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

/// The BERT forward pass, or the static table distilled from it.
enum Model {
    Bert(Box<Bert>),
    Static(StaticTable),
}

pub struct Encoder {
    model: Model,
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
        let tokenizer = load_tokenizer(&files.tokenizer, max_tokens.min(config.max_position_embeddings))?;
        Ok(Self { model: Model::Bert(Box::new(model)), tokenizer, device: device.clone(), dim })
    }

    /// The fast tier: the static table at `table` (from [`Encoder::distill`]) and the encoder's
    /// tokenizer.
    pub fn load_static(tokenizer: &Path, table: &Path, max_tokens: usize) -> Result<Self, RouterError> {
        let tokenizer = load_tokenizer(tokenizer, max_tokens)?;
        let table = StaticTable::load(table, special_ids(&tokenizer))?;
        let dim = table.dim();
        Ok(Self { model: Model::Static(table), tokenizer, device: Device::Cpu, dim })
    }

    /// Distils the static table: each vocabulary token's sentence embedding, computed alone.
    pub fn distill(&self, batch: usize, mut progress: impl FnMut(usize)) -> Result<StaticTable, RouterError> {
        let vocab = self.vocab_size() as u32;
        let ids: Vec<u32> = (0..vocab).collect();
        let mut rows = Vec::with_capacity(ids.len() * self.dim);
        for chunk in ids.chunks(batch.max(1)) {
            rows.extend(self.token_embeddings(chunk)?);
            progress(chunk.len());
        }
        Ok(StaticTable::new(rows, self.dim, self.special_ids()))
    }

    /// The sentence embedding of each token id alone (`[CLS] token [SEP]`), row after row.
    pub fn token_embeddings(&self, ids: &[u32]) -> Result<Vec<f32>, RouterError> {
        if self.is_static() {
            return Err(RouterError::Load("distillation needs the BERT encoder".into()));
        }
        let special = |t: &str| self.tokenizer.token_to_id(t).ok_or_else(|| RouterError::Load(format!("no {t} token")));
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let ids: Vec<u32> = ids.iter().flat_map(|&t| [cls, t, sep]).collect();
        let mask = vec![1u32; ids.len()];
        let batch = ids.len() / 3;
        self.encode_tokens(&Tokens { ids, mask, batch, len: 3, lengths: vec![3; batch] })
    }

    /// [CLS], [SEP] and [PAD]: skipped by the static tier.
    pub fn special_ids(&self) -> Vec<u32> {
        special_ids(&self.tokenizer)
    }
}

fn special_ids(tokenizer: &Tokenizer) -> Vec<u32> {
    ["[CLS]", "[SEP]", "[PAD]"].iter().filter_map(|t| tokenizer.token_to_id(t)).collect()
}

/// The tokenizer with the padding and truncation cherrypick needs.
fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer, RouterError> {
    let load = |e: &dyn std::fmt::Display| RouterError::Load(format!("tokenizer.json: {e}"));
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| load(&e))?;
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
            max_length: max_tokens,
            strategy: TruncationStrategy::LongestFirst,
            ..TruncationParams::default()
        }))
        .map_err(|e| load(&e))?;
    Ok(tokenizer)
}

impl Encoder {
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Whether this is the static (distilled) tier.
    pub fn is_static(&self) -> bool {
        matches!(self.model, Model::Static(_))
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
        let bert = match &self.model {
            Model::Bert(bert) => bert,
            Model::Static(table) => return Ok(table.encode(&tokens.ids, &tokens.mask, tokens.len)),
        };
        let run = || -> candle_core::Result<Vec<f32>> {
            let hidden = bert.forward(&tokens.ids, &tokens.mask, tokens.batch, tokens.len)?;
            let mask = Tensor::from_slice(&tokens.mask, (tokens.batch, tokens.len), &self.device)?;
            mean_pool_normalised(&hidden, &mask)?.flatten_all()?.to_vec1::<f32>()
        };
        run().map_err(|e| RouterError::Encode(e.to_string()))
    }
}
