//! Training the selector: masked binary cross-entropy of each head against the observed quality,
//! AdamW, a held-out validation split, early stopping on validation loss, and a fixed seed for every
//! random choice (initial weights, split, batch order, dropout masks) so a run is reproducible.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::data::Example;
use super::encoder::Encoder;
use super::selector::Mlp;

#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    pub hidden: usize,
    pub max_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub dropout: f32,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub validation_fraction: f64,
    pub seed: u64,
    /// See `difficulty`: 0 leaves the MLP's qualities as they are.
    pub difficulty_weight: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            hidden: 256,
            max_epochs: 300,
            batch_size: 64,
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            dropout: 0.2,
            patience: 20,
            validation_fraction: 0.15,
            seed: 42,
            difficulty_weight: super::difficulty::DEFAULT_WEIGHT,
        }
    }
}

/// Embeddings and labels as dense rows: `x` is `n × dim`, `y` and `mask` are `n × models` (mask 0
/// where an example has no label for a model).
pub struct Dataset {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub mask: Vec<f32>,
    pub dim: usize,
    pub models: Vec<String>,
}

impl Dataset {
    pub fn new(examples: &[Example], embeddings: Vec<f32>, dim: usize, models: Vec<String>) -> Self {
        let mut y = Vec::with_capacity(examples.len() * models.len());
        let mut mask = Vec::with_capacity(y.capacity());
        for example in examples {
            for model in &models {
                let label = example.quality.get(model);
                y.push(label.copied().unwrap_or(0.0) as f32);
                mask.push(if label.is_some() { 1.0 } else { 0.0 });
            }
        }
        Self { x: embeddings, y, mask, dim, models }
    }

    pub fn len(&self) -> usize {
        self.x.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The embeddings of `rows`, row after row.
    pub fn rows_x(&self, rows: &[usize]) -> Vec<f32> {
        gather(&self.x, self.dim, rows)
    }

    fn rows(&self, rows: &[usize], device: &Device) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let m = self.models.len();
        Ok((
            Tensor::from_vec(self.rows_x(rows), (rows.len(), self.dim), device)?,
            Tensor::from_vec(gather(&self.y, m, rows), (rows.len(), m), device)?,
            Tensor::from_vec(gather(&self.mask, m, rows), (rows.len(), m), device)?,
        ))
    }
}

/// `rows` of a row-major matrix `width` wide, row after row.
fn gather(data: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter().flat_map(|&r| data[r * width..(r + 1) * width].iter().copied()).collect()
}

/// Embeds texts in batches of similar length (less padding), in the original order.
pub fn embed_all(
    encoder: &Encoder,
    texts: &[&str],
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>, super::RouterError> {
    let dim = encoder.dim();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![0f32; texts.len() * dim];
    for chunk in order.chunks(batch.max(1)) {
        let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let embedded = encoder.encode(&batch_texts)?;
        for (k, &i) in chunk.iter().enumerate() {
            out[i * dim..(i + 1) * dim].copy_from_slice(&embedded[k * dim..(k + 1) * dim]);
        }
        progress(chunk.len());
    }
    Ok(out)
}

/// Splits `0..n` into (train, validation) with a seeded shuffle.
pub fn split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let validation = ((n as f64 * fraction).round() as usize).clamp(usize::from(n > 1), n.saturating_sub(1));
    let train = rows.split_off(validation);
    (train, rows)
}

#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    pub epochs: usize,
    pub best_epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
}

/// Mean binary cross-entropy over labelled cells, computed from logits (stable for large ones).
fn masked_bce(logits: &Tensor, y: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let per_cell = ((logits.relu()? - (logits * y)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let total = (per_cell * mask)?.sum_all()?;
    total / mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64
}

/// A seeded inverted-dropout mask for a `(rows, width)` layer, `None` when `p` is 0.
fn dropout_mask(
    rng: &mut impl rand::Rng,
    rows: usize,
    width: usize,
    p: f32,
    device: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if p <= 0.0 {
        return Ok(None);
    }
    let keep = 1.0 / (1.0 - p);
    let values: Vec<f32> = (0..rows * width).map(|_| if rng.random::<f32>() < p { 0.0 } else { keep }).collect();
    Tensor::from_vec(values, (rows, width), device).map(Some)
}

/// Trains an MLP on `train` rows, early-stopped on `validation` rows; returns the best weights.
pub fn fit(
    data: &Dataset,
    train: &[usize],
    validation: &[usize],
    options: &TrainOptions,
    device: &Device,
    mut on_epoch: impl FnMut(usize, f64, f64),
) -> candle_core::Result<(Mlp, Vec<Var>, FitReport)> {
    let (mlp, vars) = Mlp::init(data.dim, options.hidden, data.models.len(), options.seed, device)?;
    let params =
        ParamsAdamW { lr: options.learning_rate, weight_decay: options.weight_decay, ..ParamsAdamW::default() };
    let mut optimizer = AdamW::new(vars.clone(), params)?;
    let (vx, vy, vmask) = data.rows(validation, device)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let mut order = train.to_vec();
    let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
    let mut report = FitReport { epochs: 0, best_epoch: 0, train_loss: f64::NAN, validation_loss: f64::NAN };
    for epoch in 1..=options.max_epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut batches) = (0.0, 0usize);
        for rows in order.chunks(options.batch_size.max(1)) {
            let (x, y, mask) = data.rows(rows, device)?;
            let dropout = dropout_mask(&mut rng, rows.len(), options.hidden, options.dropout, device)?;
            let loss = masked_bce(&mlp.logits(&x, dropout.as_ref())?, &y, &mask)?;
            optimizer.backward_step(&loss)?;
            sum += f64::from(loss.to_scalar::<f32>()?);
            batches += 1;
        }
        let train_loss = sum / batches.max(1) as f64;
        let validation_loss = if validation.is_empty() {
            train_loss
        } else {
            f64::from(masked_bce(&mlp.logits(&vx, None)?, &vy, &vmask)?.to_scalar::<f32>()?)
        };
        on_epoch(epoch, train_loss, validation_loss);
        report.epochs = epoch;
        if best.as_ref().is_none_or(|(loss, _, _)| validation_loss < *loss) {
            let snapshot = vars.iter().map(|v| v.as_tensor().copy()).collect::<candle_core::Result<Vec<_>>>()?;
            best = Some((validation_loss, epoch, snapshot));
            report.train_loss = train_loss;
        } else if best.as_ref().is_some_and(|(_, at, _)| epoch - at >= options.patience) {
            break;
        }
    }
    if let Some((loss, epoch, snapshot)) = best {
        for (var, saved) in vars.iter().zip(&snapshot) {
            var.set(saved)?;
        }
        report.best_epoch = epoch;
        report.validation_loss = loss;
    }
    Ok((mlp, vars, report))
}

/// Predicted qualities of `rows` under a trained MLP, `rows × models`.
pub fn predict(mlp: &Mlp, data: &Dataset, rows: &[usize], device: &Device) -> candle_core::Result<Vec<f32>> {
    let (x, _, _) = data.rows(rows, device)?;
    mlp.qualities(&x)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}
