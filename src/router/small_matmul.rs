//! `y = x · W + b` for few rows (short prompts), over weights packed once at load.
//!
//! At 8–32 tokens the gemm crate spends most of a BERT layer re-packing the weight matrix into a
//! scratch buffer on every call. Here the weights are regrouped once, at load, into strips of 16
//! columns (each strip `k × 16`, contiguous), and the kernel keeps a 4 × 16 tile of `y` in AVX
//! registers while it streams a strip, broadcasting `x`. The strips are split between the rayon
//! pool's threads. Used only on x86-64 with AVX2 and FMA, detected at run time.

const COLS: usize = 16;
const ROWS: usize = 4;

/// Whether the kernel can run here.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weights `w[k × n]` (row-major) regrouped into 16-column strips.
pub struct Packed {
    strips: Vec<f32>,
    /// Columns past the last full strip, row-major `k × tail`.
    tail: Vec<f32>,
    k: usize,
    n: usize,
}

impl Packed {
    pub fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        let full = n / COLS * COLS;
        let mut strips = Vec::with_capacity(full * k);
        for start in (0..full).step_by(COLS) {
            for row in w.chunks_exact(n) {
                strips.extend_from_slice(&row[start..start + COLS]);
            }
        }
        let tail = w.chunks_exact(n).flat_map(|row| row[full..].iter().copied()).collect();
        Self { strips, tail, k, n }
    }

    pub fn columns(&self) -> usize {
        self.n
    }
}

/// `x[m × k] · w + bias`, row-major `m × n`. Panics unless [`available`].
pub fn matmul_bias(x: &[f32], w: &Packed, bias: &[f32], m: usize) -> Vec<f32> {
    let (k, n) = (w.k, w.n);
    assert!(x.len() == m * k && bias.len() == n, "shapes");
    assert!(available(), "small_matmul needs AVX2 and FMA");
    let full = n / COLS * COLS;
    // Each task computes a block of whole strips into its own buffer (`m × width`).
    let strips = full / COLS;
    let tasks = rayon::current_num_threads().clamp(1, strips.max(1));
    let per_task = strips.div_ceil(tasks);
    let blocks: Vec<(usize, Vec<f32>)> = {
        use rayon::prelude::*;
        (0..tasks)
            .into_par_iter()
            .map(|t| {
                let first = (t * per_task).min(strips);
                let last = ((t + 1) * per_task).min(strips);
                let width = (last - first) * COLS;
                let mut block = vec![0f32; m * width];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA were detected above; `kernel` stays inside the slices it is given.
                unsafe {
                    kernel(
                        x,
                        &w.strips[first * COLS * k..last * COLS * k],
                        &bias[first * COLS..last * COLS],
                        &mut block,
                        m,
                        k,
                    )
                };
                (first * COLS, block)
            })
            .collect()
    };
    let mut out = vec![0f32; m * n];
    for (start, block) in &blocks {
        let width = block.len() / m.max(1);
        for i in 0..m {
            out[i * n + start..i * n + start + width].copy_from_slice(&block[i * width..(i + 1) * width]);
        }
    }
    let tail = n - full;
    for i in 0..m {
        for j in 0..tail {
            let mut sum = bias[full + j];
            for kk in 0..k {
                sum += x[i * k + kk] * w.tail[kk * tail + j];
            }
            out[i * n + full + j] = sum;
        }
    }
    out
}

/// `out[m × width] = x[m × k] · strips + bias`, `strips` holding `width / 16` packed strips.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(x: &[f32], strips: &[f32], bias: &[f32], out: &mut [f32], m: usize, k: usize) {
    use std::arch::x86_64::*;
    let width = bias.len();
    debug_assert!(strips.len() == width * k && out.len() == m * width && x.len() == m * k);
    // SAFETY: s * COLS + 16 <= width, so bias/out columns are in bounds; (s * k + kk) * COLS + 16 <=
    // strips.len(); i + r < m and kk < k bound the x index; out rows are (i + r) * width + ...
    unsafe {
        let (xp, sp, op, bp) = (x.as_ptr(), strips.as_ptr(), out.as_mut_ptr(), bias.as_ptr());
        for s in 0..width / COLS {
            let b0 = _mm256_loadu_ps(bp.add(s * COLS));
            let b1 = _mm256_loadu_ps(bp.add(s * COLS + 8));
            let strip = sp.add(s * k * COLS);
            let mut i = 0;
            while i < m {
                let rows = ROWS.min(m - i);
                let mut acc = [[b0, b1]; ROWS];
                for kk in 0..k {
                    let w0 = _mm256_loadu_ps(strip.add(kk * COLS));
                    let w1 = _mm256_loadu_ps(strip.add(kk * COLS + 8));
                    for (r, a) in acc.iter_mut().enumerate().take(rows) {
                        let xv = _mm256_set1_ps(*xp.add((i + r) * k + kk));
                        a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                        a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
                    }
                }
                for (r, a) in acc.iter().enumerate().take(rows) {
                    _mm256_storeu_ps(op.add((i + r) * width + s * COLS), a[0]);
                    _mm256_storeu_ps(op.add((i + r) * width + s * COLS + 8), a[1]);
                }
                i += ROWS;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_product() {
        if !available() {
            return; // nothing to check where the kernel never runs
        }
        for (m, k, n) in [(1, 3, 16), (5, 7, 33), (8, 384, 1152), (3, 20, 5), (13, 64, 100)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 9.0).collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
            let got = matmul_bias(&x, &Packed::new(&w, k, n), &b, m);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = b[j] + (0..k).map(|kk| x[i * k + kk] * w[kk * n + j]).sum::<f32>();
                    assert!((got[i * n + j] - want).abs() < 1e-3 * (1.0 + want.abs()), "({m},{k},{n}) [{i},{j}]");
                }
            }
        }
    }
}
