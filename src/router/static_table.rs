//! The fast encoder tier: a static token-embedding table distilled from the BERT encoder (each
//! vocabulary token's sentence embedding, computed once), so a prompt's embedding is the normalised
//! mean of its tokens' rows: microseconds per prompt instead of milliseconds, for request rates the
//! BERT worker cannot keep up with. Its routing quality is measured separately (BENCHMARKS.md); a
//! selector must be trained on the tier it runs with.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::RouterError;

pub const TENSOR: &str = "embeddings";

pub struct StaticTable {
    rows: Vec<f32>,
    dim: usize,
    /// Special tokens ([CLS], [SEP]) carry no meaning of their own: skipped.
    skip: Vec<u32>,
}

impl StaticTable {
    pub fn new(rows: Vec<f32>, dim: usize, skip: Vec<u32>) -> Self {
        Self { rows, dim, skip }
    }

    pub fn load(path: &Path, skip: Vec<u32>) -> Result<Self, RouterError> {
        let fail = |e: &dyn std::fmt::Display| RouterError::Load(format!("{}: {e}", path.display()));
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| fail(&e))?;
        let table = tensors.remove(TENSOR).ok_or_else(|| fail(&format!("no tensor `{TENSOR}`")))?;
        let (_, dim) = table.dims2().map_err(|e| fail(&e))?;
        let rows = table.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| fail(&e))?;
        Ok(Self { rows, dim, skip })
    }

    pub fn save(&self, path: &Path) -> Result<(), RouterError> {
        let vocab = self.rows.len() / self.dim;
        let table = Tensor::from_slice(&self.rows, (vocab, self.dim), &Device::Cpu)
            .map_err(|e| RouterError::Load(e.to_string()))?;
        candle_core::safetensors::save(&HashMap::from([(TENSOR.to_owned(), table)]), path)
            .map_err(|e| RouterError::Load(format!("{}: {e}", path.display())))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// One unit-length embedding per row of `ids` (row-major, `len` per row, `mask` 0 = padding).
    pub fn encode(&self, ids: &[u32], mask: &[u32], len: usize) -> Vec<f32> {
        let rows = ids.len() / len.max(1);
        let mut out = vec![0f32; rows * self.dim];
        for (row, sum) in out.chunks_exact_mut(self.dim).enumerate() {
            for k in row * len..(row + 1) * len {
                let id = ids[k];
                if mask[k] == 0 || self.skip.contains(&id) {
                    continue;
                }
                let Some(vector) = self.rows.get(id as usize * self.dim..(id as usize + 1) * self.dim) else {
                    continue;
                };
                for (s, v) in sum.iter_mut().zip(vector) {
                    *s += v;
                }
            }
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                sum.iter_mut().for_each(|v| *v /= norm);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_rows_skipping_special_tokens_and_padding() {
        // Vocabulary of 4, dim 2; token 0 is special.
        let table = StaticTable::new(vec![9.0, 9.0, 1.0, 0.0, 0.0, 1.0, 3.0, 4.0], 2, vec![0]);
        let out = table.encode(&[0, 1, 2, 0, 3, 0], &[1, 1, 1, 1, 1, 0], 3);
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert!((out[0] - r).abs() < 1e-6 && (out[1] - r).abs() < 1e-6, "{out:?}");
        assert!((out[2] - 0.6).abs() < 1e-6 && (out[3] - 0.8).abs() < 1e-6, "{out:?}");
    }
}
