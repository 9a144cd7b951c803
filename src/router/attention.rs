//! BERT self-attention on the CPU in one pass per head, read straight from the fused QKV output.
//!
//! The tensor path splits QKV into three head-major copies, runs a batched `q · kᵀ` through gemm
//! (inefficient at a depth of 32), writes the whole `heads × len × len` score tensor, runs softmax
//! over it with a scalar `exp` (2 ns an element), multiplies by `v` and transposes back: five passes
//! over memory, and at 512 tokens a 12 MB score tensor per layer. Here each (sequence, head) task
//! copies its `k` (transposed) and `v` into a buffer that stays in cache (2 × len × 32 floats), then
//! for one query row at a time computes the scores, a softmax with a vectorised `exp`, and the
//! weighted sum of `v`, and writes the row's context where the next layer reads it. Tasks run on
//! the rayon pool; AVX2 and FMA are used when the CPU has them.

use rayon::prelude::*;

use super::small_matmul;

/// Shapes of one layer's attention.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Heads {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// Context vectors `(batch × len, hidden)` for `qkv` laid out `(batch × len, [q | k | v])`, each
/// part head-major (`head × head_dim`). `mask[b × len + j] == 0` hides key `j` of sequence `b`.
pub fn attention(qkv: &[f32], mask: Option<&[u32]>, shape: Heads) -> Vec<f32> {
    let Heads { batch, len, heads, head_dim } = shape;
    let hidden = shape.hidden();
    assert_eq!(qkv.len(), batch * len * 3 * hidden, "qkv shape");
    if let Some(mask) = mask {
        assert_eq!(mask.len(), batch * len, "mask shape");
    }
    // One task per (sequence, head), each writing its own `len × head_dim` block.
    let blocks: Vec<Vec<f32>> = (0..batch * heads)
        .into_par_iter()
        .map(|task| {
            let (b, h) = (task / heads, task % heads);
            let rows = &qkv[b * len * 3 * hidden..(b + 1) * len * 3 * hidden];
            let keep = mask.map(|m| &m[b * len..(b + 1) * len]);
            head_attention(rows, keep, h, shape)
        })
        .collect();
    let mut context = vec![0f32; batch * len * hidden];
    for (task, block) in blocks.iter().enumerate() {
        let (b, h) = (task / heads, task % heads);
        for (i, row) in block.chunks_exact(head_dim).enumerate() {
            let at = (b * len + i) * hidden + h * head_dim;
            context[at..at + head_dim].copy_from_slice(row);
        }
    }
    context
}

fn head_attention(rows: &[f32], keep: Option<&[u32]>, head: usize, shape: Heads) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if small_matmul::avx512() && shape.head_dim.is_multiple_of(16) {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { head_attention_avx512(rows, keep, head, shape) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { head_attention_avx2(rows, keep, head, shape) };
    }
    head_attention_body(rows, keep, head, shape)
}

/// With AVX-512, the two products run through the dense layers' register-tiled kernel (each key
/// or value load feeds 8 FMAs; the row-at-a-time loops below are bound by loads and stores):
/// `scores = q · kᵀ` against the keys packed as strips, softmax, `context = p · v`. Keys are
/// padded to a multiple of 16 with a bias of minus infinity, and queries go 64 at a time so the
/// scores stay in cache.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn head_attention_avx512(rows: &[f32], keep: Option<&[u32]>, head: usize, shape: Heads) -> Vec<f32> {
    const QUERY_BLOCK: usize = 64;
    let Heads { len, head_dim: d, .. } = shape;
    let padded = len.next_multiple_of(16);
    let HeadInputs { queries, keys, values, bias } = gather(rows, keep, head, shape, padded);
    let keys = small_matmul::pack_strips(&keys, d, padded);
    let values = small_matmul::pack_strips(&values, padded, d);
    let no_bias = vec![0f32; d];
    let mut out = vec![0f32; len * d];
    let mut scores = vec![0f32; QUERY_BLOCK.min(len) * padded];
    for first in (0..len).step_by(QUERY_BLOCK) {
        let m = QUERY_BLOCK.min(len - first);
        let scores = &mut scores[..m * padded];
        small_matmul::strips_product(&queries[first * d..(first + m) * d], &keys, &bias, scores, m, d);
        for row in scores.chunks_exact_mut(padded) {
            softmax(row);
        }
        small_matmul::strips_product(scores, &values, &no_bias, &mut out[first * d..(first + m) * d], m, padded);
    }
    out
}

/// Softmax of one row in place; a row with every entry minus infinity becomes zeros. The maximum
/// and the sum run over 16 lanes: a single running value is a dependency chain the compiler may
/// not reorder, which kept the loop (and its `exp`) scalar.
#[inline(always)]
fn softmax(row: &mut [f32]) {
    const LANES: usize = 16;
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = m.max(x);
        }
    }
    let max = chunks.remainder().iter().chain(&maxima).fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, x) in sums.iter_mut().zip(chunk.iter_mut()) {
            *x = exp(*x - max);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inverse = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inverse);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn head_attention_avx2(rows: &[f32], keep: Option<&[u32]>, head: usize, shape: Heads) -> Vec<f32> {
    head_attention_body(rows, keep, head, shape)
}

#[inline(always)]
fn head_attention_body(rows: &[f32], keep: Option<&[u32]>, head: usize, shape: Heads) -> Vec<f32> {
    let Heads { len, head_dim: d, .. } = shape;
    // Keys transposed (`d × len`) so a row of scores is `d` broadcast-multiply-adds over contiguous
    // memory.
    let HeadInputs { queries, keys, values, bias } = gather(rows, keep, head, shape, len);
    let mut out = vec![0f32; len * d];
    let mut scores = vec![0f32; len];
    for (i, q) in queries.chunks_exact(d).enumerate() {
        scores.copy_from_slice(&bias);
        for (c, &qc) in q.iter().enumerate() {
            for (s, &k) in scores.iter_mut().zip(&keys[c * len..(c + 1) * len]) {
                *s += qc * k;
            }
        }
        softmax(&mut scores);
        let context = &mut out[i * d..(i + 1) * d];
        for (&p, v) in scores.iter().zip(values.chunks_exact(d)) {
            for (o, &x) in context.iter_mut().zip(v) {
                *o += p * x;
            }
        }
    }
    out
}

/// One head's inputs, `width ≥ len` keys wide: queries scaled by 1/√d (`len × d`), keys transposed
/// (`d × width`), values (`width × d`), and a bias per key: minus infinity (which `exp` turns into
/// exactly 0) for hidden keys and for the zero padding past `len`.
struct HeadInputs {
    queries: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
    bias: Vec<f32>,
}

#[inline(always)]
fn gather(rows: &[f32], keep: Option<&[u32]>, head: usize, shape: Heads, width: usize) -> HeadInputs {
    let Heads { len, head_dim: d, .. } = shape;
    let hidden = shape.hidden();
    let (q_at, k_at, v_at) = (head * d, hidden + head * d, 2 * hidden + head * d);
    let scale = 1.0 / (d as f32).sqrt();
    let mut queries = vec![0f32; len * d];
    let mut keys = vec![0f32; d * width];
    let mut values = vec![0f32; width * d];
    for (j, row) in rows.chunks_exact(3 * hidden).enumerate() {
        for (c, &k) in row[k_at..k_at + d].iter().enumerate() {
            keys[c * width + j] = k;
        }
        values[j * d..(j + 1) * d].copy_from_slice(&row[v_at..v_at + d]);
        for (q, &x) in queries[j * d..(j + 1) * d].iter_mut().zip(&row[q_at..q_at + d]) {
            *q = x * scale;
        }
    }
    let bias =
        (0..width).map(|j| if j >= len || keep.is_some_and(|m| m[j] == 0) { f32::NEG_INFINITY } else { 0.0 }).collect();
    HeadInputs { queries, keys, values, bias }
}

/// `e^x` for `x ≤ 0` to within 2 ulp, branch-free so loops over it vectorise: `x = n·ln 2 + r`,
/// `e^r` by its degree-6 Taylor polynomial on `|r| ≤ ln 2 / 2`, `2^n` by building the exponent
/// bits. Below -87.3 (where `e^x` leaves the normal floats) it returns 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 × 2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.max(-87.3);
    let t = clamped * LOG2E + ROUND;
    let n = t - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let exponent = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits(((exponent + 127) << 23) as u32);
    if x < -87.3 { 0.0 } else { p * scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Softmax attention written the plain way, in f64.
    fn reference(qkv: &[f32], mask: Option<&[u32]>, s: Heads) -> Vec<f32> {
        let hidden = s.heads * s.head_dim;
        let at = |b: usize, t: usize, part: usize, h: usize, c: usize| {
            f64::from(qkv[(b * s.len + t) * 3 * hidden + part * hidden + h * s.head_dim + c])
        };
        let mut out = vec![0f32; s.batch * s.len * hidden];
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.len {
                    let keys: Vec<usize> = (0..s.len).filter(|&j| mask.is_none_or(|m| m[b * s.len + j] != 0)).collect();
                    let scores: Vec<f64> = keys
                        .iter()
                        .map(|&j| {
                            (0..s.head_dim).map(|c| at(b, i, 0, h, c) * at(b, j, 1, h, c)).sum::<f64>()
                                / (s.head_dim as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..s.head_dim {
                        let v: f64 = keys.iter().zip(&weights).map(|(&j, w)| w * at(b, j, 2, h, c)).sum();
                        out[(b * s.len + i) * hidden + h * s.head_dim + c] = (v / total) as f32;
                    }
                }
            }
        }
        out
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    /// `attention` against [`reference`], without a mask and with `mask`, to `tolerance` relative.
    fn assert_matches_reference(qkv: &[f32], mask: &[u32], shape: Heads, tolerance: f32) {
        for mask in [None, Some(mask)] {
            let got = attention(qkv, mask, shape);
            let want = reference(qkv, mask, shape);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= tolerance * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn matches_plain_softmax_attention_with_and_without_padding() {
        let shape = Heads { batch: 3, len: 19, heads: 4, head_dim: 8 };
        let qkv = pseudo_random(shape.batch * shape.len * 3 * shape.hidden(), 11);
        // Sequence 0 full, 1 padded after 7 tokens, 2 padded after 1.
        let mask: Vec<u32> =
            (0..shape.batch * shape.len).map(|i| u32::from(i % shape.len < [19, 7, 1][i / shape.len])).collect();
        assert_matches_reference(&qkv, &mask, shape, 1e-5);
    }

    /// MiniLM's head size, a length that is no multiple of 16 and longer than a query block: on a
    /// CPU with AVX-512 this takes the packed-kernel path.
    #[test]
    fn matches_plain_softmax_attention_at_head_size_32() {
        let shape = Heads { batch: 2, len: 70, heads: 2, head_dim: 32 };
        let qkv = pseudo_random(shape.batch * shape.len * 3 * shape.hidden(), 5);
        let mask: Vec<u32> =
            (0..shape.batch * shape.len).map(|i| u32::from(i < shape.len || i % shape.len < 33)).collect();
        assert_matches_reference(&qkv, &mask, shape, 1e-4);
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - want).abs() / want);
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }
}
