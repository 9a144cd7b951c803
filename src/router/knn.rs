//! The k-nearest-neighbour baseline (RouterBench's kNN router): a prompt's predicted quality per
//! model is the mean outcome of its k most similar training prompts. Evaluation only.

use super::train::Dataset;

pub const DEFAULT_K: usize = 20;

/// Predicted qualities of `queries` from the labels of `reference` rows, `queries × models`.
pub fn predict(data: &Dataset, reference: &[usize], queries: &[usize], k: usize) -> Vec<f32> {
    let (dim, width) = (data.dim, data.models.len());
    let row = |r: usize| &data.x[r * dim..(r + 1) * dim];
    let mut out = Vec::with_capacity(queries.len() * width);
    let mut scored: Vec<(f32, usize)> = Vec::with_capacity(reference.len());
    for &q in queries {
        let query = row(q);
        scored.clear();
        // Embeddings are unit length: the dot product is the cosine.
        scored.extend(reference.iter().map(|&r| (row(r).iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), r)));
        let k = k.min(scored.len()).max(1);
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        for m in 0..width {
            let (mut sum, mut count) = (0f32, 0f32);
            for &(_, r) in &scored[..k] {
                let mask = data.mask[r * width + m];
                sum += mask * data.y[r * width + m];
                count += mask;
            }
            out.push(if count > 0.0 { sum / count } else { 0.5 });
        }
    }
    out
}
