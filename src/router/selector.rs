//! The selector: an MLP from a prompt embedding to one predicted quality per candidate model, and
//! the card (`router.json`) that says what it was trained on.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::RouterError;
use super::difficulty::{Difficulty, DifficultyCard};

pub const WEIGHTS_FILE: &str = "router.safetensors";
pub const CARD_FILE: &str = "router.json";
pub const CARD_FORMAT: u32 = 1;

/// `router.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub format: u32,
    /// The encoder the embeddings came from; the selector is only valid with it.
    pub encoder: String,
    pub embedding_dim: usize,
    pub hidden: usize,
    /// The heads, in output order.
    pub models: Vec<ModelCard>,
    pub data: Vec<DataRef>,
    pub training: serde_json::Value,
    pub validation: serde_json::Value,
    /// The difficulty adjustment for unfamiliar prompts (`difficulty.rs`); absent in older cards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<DifficultyCard>,
}

/// What training learned about one candidate, besides its head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    /// Mean quality over the training data.
    pub mean_quality: f64,
    /// Mean cost per prompt in the training data: the cost estimate when no price table applies.
    pub mean_cost_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_output_tokens: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRef {
    pub file: String,
    pub sha256: String,
    pub examples: usize,
}

/// Two layers: embedding → hidden (ReLU) → one logit per model.
pub struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    pub const NAMES: [&'static str; 4] = ["hidden.weight", "hidden.bias", "out.weight", "out.bias"];

    fn from_tensors(t: [Tensor; 4]) -> Self {
        let [w1, b1, w2, b2] = t;
        Self { hidden: Linear::new(w1, Some(b1)), out: Linear::new(w2, Some(b2)) }
    }

    /// Fresh trainable weights, uniform in ±1/√fan_in as PyTorch initialises linear layers, from a
    /// seeded generator so a training run is reproducible.
    pub fn init(
        dim: usize,
        hidden: usize,
        outputs: usize,
        seed: u64,
        device: &Device,
    ) -> candle_core::Result<(Self, Vec<Var>)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut uniform = |rows: usize, cols: usize, fan_in: usize| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let values: Vec<f32> = (0..rows * cols.max(1)).map(|_| rng.random_range(-bound..bound)).collect();
            Var::from_vec(values, if cols == 0 { vec![rows] } else { vec![rows, cols] }, device)
        };
        let vars = vec![
            uniform(hidden, dim, dim)?,
            uniform(hidden, 0, dim)?,
            uniform(outputs, hidden, hidden)?,
            uniform(outputs, 0, hidden)?,
        ];
        let tensors = [0, 1, 2, 3].map(|i| vars[i].as_tensor().clone());
        Ok((Self::from_tensors(tensors), vars))
    }

    /// Logits, `(batch, models)`. `dropout` (training only) multiplies the hidden layer: 0 for a
    /// dropped unit, 1/(1-p) for a kept one.
    pub fn logits(&self, x: &Tensor, dropout: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let h = self.hidden.forward(x)?.relu()?;
        let h = match dropout {
            Some(mask) => (h * mask)?,
            None => h,
        };
        self.out.forward(&h)
    }

    /// Predicted quality in [0, 1], `(batch, models)`.
    pub fn qualities(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::sigmoid(&self.logits(x, None)?)
    }
}

/// Writes trained weights, the difficulty adjustment and the card into `dir`.
pub fn save(dir: &Path, vars: &[Var], difficulty: Option<&Difficulty>, card: &Card) -> Result<(), RouterError> {
    std::fs::create_dir_all(dir).map_err(|e| RouterError::Load(format!("{}: {e}", dir.display())))?;
    let mut tensors: HashMap<String, Tensor> =
        Mlp::NAMES.iter().zip(vars).map(|(name, var)| ((*name).to_owned(), var.as_tensor().clone())).collect();
    if let Some(difficulty) = difficulty {
        let parts = difficulty.tensors().map_err(|e| RouterError::Load(e.to_string()))?;
        tensors.extend(parts.into_iter().map(|(name, t)| (name.to_owned(), t)));
    }
    candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE)).map_err(|e| RouterError::Load(e.to_string()))?;
    let json = serde_json::to_string_pretty(card).expect("the card serialises");
    std::fs::write(dir.join(CARD_FILE), json + "\n").map_err(|e| RouterError::Load(format!("{}: {e}", dir.display())))
}

/// A trained selector, ready to predict.
pub struct Selector {
    mlp: Mlp,
    difficulty: Option<Difficulty>,
    pub card: Card,
    device: Device,
}

impl Selector {
    pub fn load(dir: &Path, device: &Device) -> Result<Self, RouterError> {
        let fail = |what: &Path, e: &dyn std::fmt::Display| RouterError::Load(format!("{}: {e}", what.display()));
        let card_path = dir.join(CARD_FILE);
        let text = std::fs::read_to_string(&card_path).map_err(|e| fail(&card_path, &e))?;
        let card: Card = serde_json::from_str(&text).map_err(|e| fail(&card_path, &e))?;
        if card.format != CARD_FORMAT {
            return Err(fail(&card_path, &format!("format {} is not {CARD_FORMAT}", card.format)));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let mut tensors = candle_core::safetensors::load(&weights_path, device).map_err(|e| fail(&weights_path, &e))?;
        let mut take = |name: &str| {
            tensors
                .remove(name)
                .ok_or_else(|| format!("no tensor `{name}`"))?
                .to_dtype(DType::F32)
                .map_err(|e| e.to_string())
        };
        let mut tensor = |name: &str| take(name).map_err(|e| fail(&weights_path, &e));
        let t = [tensor(Mlp::NAMES[0])?, tensor(Mlp::NAMES[1])?, tensor(Mlp::NAMES[2])?, tensor(Mlp::NAMES[3])?];
        let expected = [(card.hidden, card.embedding_dim), (card.models.len(), card.hidden)];
        if t[0].dims2().ok() != Some(expected[0]) || t[2].dims2().ok() != Some(expected[1]) {
            return Err(fail(&weights_path, &"tensor shapes do not match router.json"));
        }
        let difficulty = match &card.difficulty {
            None => None,
            Some(c) => {
                let d = Difficulty::from_parts(c, &mut take).map_err(|e| fail(&weights_path, &e))?;
                if d.slopes.len() != card.models.len() || d.direction.len() != card.embedding_dim {
                    return Err(fail(&weights_path, &"difficulty tensors do not match router.json"));
                }
                Some(d)
            }
        };
        Ok(Self { mlp: Mlp::from_tensors(t), difficulty, card, device: device.clone() })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.card.models.iter().map(|m| m.name.as_str())
    }

    /// Predicted qualities for `rows` embeddings laid out row after row: `rows × models` floats.
    pub fn predict(&self, embeddings: &[f32], rows: usize) -> Result<Vec<f32>, RouterError> {
        let run = || -> candle_core::Result<Vec<f32>> {
            let x = Tensor::from_slice(embeddings, (rows, self.card.embedding_dim), &self.device)?;
            let mut qualities = self.mlp.qualities(&x)?.flatten_all()?.to_vec1::<f32>()?;
            if let Some(difficulty) = &self.difficulty {
                difficulty.adjust(&x, embeddings, &mut qualities)?;
            }
            Ok(qualities)
        };
        run().map_err(|e| RouterError::Select(e.to_string()))
    }
}
