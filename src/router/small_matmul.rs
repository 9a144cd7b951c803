//! `y = x · W + b` for few rows (short prompts), over weights packed once at load.
//!
//! At 8–32 tokens the gemm crate spends most of a BERT layer re-packing the weight matrix into a
//! scratch buffer on every call. Here the weights are regrouped once, at load, into strips of 16
//! columns (each strip `k × 16`, contiguous), and the kernel keeps a 4 × 16 tile of `y` in AVX
//! registers while it streams a strip, broadcasting `x`. The strips are split between the rayon
//! pool's threads. Used only on x86-64 with AVX2 and FMA, detected at run time.

const COLS: usize = 16;
const ROWS: usize = 4;

/// `out`'s data, shared by the tasks, each of which writes only its own columns.
#[derive(Clone, Copy)]
struct Columns(*mut f32);

// SAFETY: tasks write disjoint column ranges of the buffer, which outlives them (rayon joins).
unsafe impl Send for Columns {}
unsafe impl Sync for Columns {}

impl Columns {
    /// The block whose first column is `column`, rows `stride` apart.
    fn block(self, column: usize, stride: usize) -> Block {
        // SAFETY: callers pass a column < stride, inside the buffer's first row.
        Block { at: unsafe { self.0.add(column) }, stride, column }
    }
}

/// A task's columns of `out`: row `i`, column `j` of the block is at `at + i * stride + j`, which is
/// column `column + j` of `out`.
#[derive(Clone, Copy)]
struct Block {
    at: *mut f32,
    stride: usize,
    column: usize,
}

/// What a task does to each finished tile of `y` while it is still in cache: nothing, the exact
/// GELU, or add a residual (`m × n`, laid out like `y`). Fusing these saves a pass over `y` and,
/// for GELU, a single-threaded one.
#[derive(Clone, Copy)]
pub enum Then<'a> {
    Nothing,
    Gelu,
    Add(&'a [f32]),
}

impl Then<'_> {
    /// Applies the step to columns `column..column + width` of the block's row `row`.
    ///
    /// # Safety
    /// The span lies inside the block, which only the calling task writes; an `Add` residual has
    /// `out`'s layout.
    #[inline(always)]
    unsafe fn apply(self, out: Block, row: usize, column: usize, width: usize) {
        // SAFETY: the caller's contract.
        let span = unsafe { std::slice::from_raw_parts_mut(out.at.add(row * out.stride + column), width) };
        match self {
            Then::Nothing => {}
            Then::Gelu => span.iter_mut().for_each(|v| *v = super::bert::gelu_scalar(*v)),
            Then::Add(residual) => {
                let at = row * out.stride + out.column + column;
                span.iter_mut().zip(&residual[at..at + width]).for_each(|(v, r)| *v += r);
            }
        }
    }
}

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

/// Whether this CPU has AVX-512F, for the wider kernel (8 rows × 32 columns of `y` in registers).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
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

/// `x[m × k] · w + bias`, row-major `m × n`, then `then` on every element (GELU, or a residual
/// add) as each tile finishes. Panics unless [`available`].
pub fn matmul_bias(x: &[f32], w: &Packed, bias: &[f32], m: usize, then: Then) -> Vec<f32> {
    multiply(x, w, bias, m, then, avx512())
}

fn multiply(x: &[f32], w: &Packed, bias: &[f32], m: usize, then: Then, wide: bool) -> Vec<f32> {
    let (k, n) = (w.k, w.n);
    assert!(x.len() == m * k && bias.len() == n, "shapes");
    if let Then::Add(residual) = then {
        assert_eq!(residual.len(), m * n, "the residual has the output's shape");
    }
    assert!(available(), "small_matmul needs AVX2 and FMA");
    let full = n / COLS * COLS;
    let mut out = vec![0f32; m * n];
    // Each task computes a block of whole strips, straight into its columns of `out`.
    let strips = full / COLS;
    let tasks = rayon::current_num_threads().clamp(1, strips.max(1));
    let per_task = strips.div_ceil(tasks);
    let target = Columns(out.as_mut_ptr());
    {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(|t| {
            let first = (t * per_task).min(strips);
            let last = ((t + 1) * per_task).min(strips);
            if first == last {
                return;
            }
            let (strips, bias) = (&w.strips[first * COLS * k..last * COLS * k], &bias[first * COLS..last * COLS]);
            let out = target.block(first * COLS, n);
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: `wide` only where AVX-512F was detected; the kernel writes only columns
                // first * 16 .. last * 16 of `m` rows, which no other task writes.
                unsafe { kernel_avx512(x, strips, bias, out, m, k, then) };
            } else {
                // SAFETY: AVX2 and FMA were detected above; as for the AVX-512 kernel.
                unsafe { kernel(x, strips, bias, out, m, k, then) };
            }
        });
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
        // SAFETY: row i's tail columns are inside `out`, and no task is running.
        unsafe { then.apply(Block { at: out.as_mut_ptr(), stride: n, column: 0 }, i, full, tail) };
    }
    out
}

/// `out[m × width] = x[m × k] · strips + bias`, `strips` holding `width / 16` packed strips.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(x: &[f32], strips: &[f32], bias: &[f32], out: Block, m: usize, k: usize, then: Then) {
    use std::arch::x86_64::*;
    let width = bias.len();
    debug_assert!(strips.len() == width * k && x.len() == m * k && width <= out.stride);
    // SAFETY: s * COLS + 16 <= width, so bias/out columns are in bounds; (s * k + kk) * COLS + 16 <=
    // strips.len(); i + r < m and kk < k bound the x index; out rows are (i + r) * out.stride + ... within the block's columns.
    unsafe {
        let (xp, sp, op, bp) = (x.as_ptr(), strips.as_ptr(), out.at, bias.as_ptr());
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
                    _mm256_storeu_ps(op.add((i + r) * out.stride + s * COLS), a[0]);
                    _mm256_storeu_ps(op.add((i + r) * out.stride + s * COLS + 8), a[1]);
                    then.apply(out, i + r, s * COLS, COLS);
                }
                i += ROWS;
            }
        }
    }
}

/// `out[m × n] = x[m × k] · w + bias` on the calling thread, for `w` already in strips
/// ([`pack_strips`], `n = bias.len()`, a multiple of 16). Panics unless [`avx512`].
pub fn strips_product(x: &[f32], strips: &[f32], bias: &[f32], out: &mut [f32], m: usize, k: usize) {
    let n = bias.len();
    assert!(n.is_multiple_of(COLS) && strips.len() == n * k && x.len() == m * k && out.len() == m * n, "shapes");
    assert!(avx512(), "strips_product needs AVX-512F");
    let block = Block { at: out.as_mut_ptr(), stride: n, column: 0 };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); the kernel writes rows < m, columns < n of `out`.
    unsafe {
        kernel_avx512(x, strips, bias, block, m, k, Then::Nothing)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = block;
}

/// `w[k × n]` (row-major, `n` a multiple of 16) as the strips [`strips_product`] reads.
pub fn pack_strips(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert!(n.is_multiple_of(COLS) && w.len() == k * n, "shapes");
    Packed::new(w, k, n).strips
}

/// Rows of `x` a task keeps hot while it sweeps its strips: 64 rows of up to 1,536 floats, with a
/// strip pair, stay within L2.
const ROW_BLOCK: usize = 64;

/// The AVX-512 kernel: the same strips, two at a time, against 8 rows of `x` at once: 16
/// accumulators of 16 floats, each weight load feeding 8 FMAs. The 8 rows are first copied
/// `k`-major into a panel, so the broadcasts read one contiguous stream instead of 8 rows `k` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512(x: &[f32], strips: &[f32], bias: &[f32], out: Block, m: usize, k: usize, then: Then) {
    let width = bias.len();
    debug_assert!(strips.len() == width * k && x.len() == m * k && width <= out.stride);
    // The panel is reused per thread: a fresh one per call cost a page-zeroing fault per page
    // (8% of a 32-token forward pass).
    thread_local! {
        static PANEL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PANEL.with_borrow_mut(|panel| {
        let size = m.min(ROW_BLOCK).next_multiple_of(8) * k;
        if panel.len() < size {
            panel.resize(size, 0.0);
        }
        // SAFETY: as for `kernel_avx512` (this closure runs within it).
        unsafe { fill_avx512(x, strips, bias, out, m, k, panel, then) }
    })
}

/// The body of [`kernel_avx512`], over a panel of at least `min(m, 64)` rows rounded up to 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn fill_avx512(
    x: &[f32],
    strips: &[f32],
    bias: &[f32],
    out: Block,
    m: usize,
    k: usize,
    panel: &mut [f32],
    then: Then,
) {
    let count = bias.len() / COLS;
    for block in (0..m).step_by(ROW_BLOCK) {
        let end = (block + ROW_BLOCK).min(m);
        let tiles = (end - block).div_ceil(8);
        for t in 0..tiles {
            let tile = &mut panel[t * 8 * k..(t + 1) * 8 * k];
            for r in 0..8 {
                let row = block + t * 8 + r;
                if row < end {
                    for (kk, &v) in x[row * k..(row + 1) * k].iter().enumerate() {
                        tile[kk * 8 + r] = v;
                    }
                } else {
                    (0..k).for_each(|kk| tile[kk * 8 + r] = 0.0);
                }
            }
        }
        let mut s = 0;
        while s < count {
            let pair = count - s >= 2;
            for t in 0..tiles {
                let (first, rows) = (block + t * 8, (end - block - t * 8).min(8));
                let tile = &panel[t * 8 * k..(t + 1) * 8 * k];
                // SAFETY: s (+1) < count strips; rows first..first + rows are < m.
                unsafe {
                    if pair {
                        tile8::<2>(tile, strips, bias, out, first, rows, s, k, then)
                    } else {
                        tile8::<1>(tile, strips, bias, out, first, rows, s, k, then)
                    }
                }
            }
            s += if pair { 2 } else { 1 };
        }
    }
}

/// `out[first..first + rows, strips s..s + S] = panel · strips + bias`, 8 × 16S floats in registers
/// (panel rows past `rows` are zeros and not stored).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile8<const S: usize>(
    panel: &[f32],
    strips: &[f32],
    bias: &[f32],
    out: Block,
    first: usize,
    rows: usize,
    s: usize,
    k: usize,
    then: Then,
) {
    use std::arch::x86_64::*;
    debug_assert!(panel.len() == 8 * k && rows <= 8);
    // SAFETY: (s + S) * COLS <= bias.len() bounds the bias and the block's columns, (s + S) * k * COLS <=
    // strips.len() the weights, kk * 8 + 7 < panel.len(); out rows first + r < m for r < rows.
    unsafe {
        let (xp, sp, op, bp) = (panel.as_ptr(), strips.as_ptr(), out.at, bias.as_ptr());
        let start: [__m512; S] = std::array::from_fn(|c| _mm512_loadu_ps(bp.add((s + c) * COLS)));
        let mut acc = [start; 8];
        let base: [*const f32; S] = std::array::from_fn(|c| sp.add((s + c) * k * COLS));
        for kk in 0..k {
            let w: [__m512; S] = std::array::from_fn(|c| _mm512_loadu_ps(base[c].add(kk * COLS)));
            let xk = xp.add(kk * 8);
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*xk.add(r));
                for c in 0..S {
                    a[c] = _mm512_fmadd_ps(xv, w[c], a[c]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate().take(rows) {
            for (c, v) in a.iter().enumerate() {
                _mm512_storeu_ps(op.add((first + r) * out.stride + (s + c) * COLS), *v);
            }
            then.apply(out, first + r, s * COLS, S * COLS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_product_then_gelu_or_a_residual() {
        if !available() {
            return; // nothing to check where the kernel never runs
        }
        let kernels = if avx512() { vec![false, true] } else { vec![false] };
        for (m, k, n, wide) in [(1, 3, 16), (5, 7, 33), (8, 384, 1152), (3, 20, 5), (13, 64, 100), (70, 40, 48)]
            .into_iter()
            .flat_map(|(m, k, n)| kernels.iter().map(move |&wide| (m, k, n, wide)))
        {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 9.0).collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
            let residual: Vec<f32> = (0..m * n).map(|i| (i % 17) as f32 - 8.0).collect();
            let packed = Packed::new(&w, k, n);
            for (name, then) in [("nothing", Then::Nothing), ("gelu", Then::Gelu), ("add", Then::Add(&residual))] {
                let got = multiply(&x, &packed, &b, m, then, wide);
                for i in 0..m {
                    for j in 0..n {
                        let y: f32 = b[j] + (0..k).map(|kk| x[i * k + kk] * w[kk * n + j]).sum::<f32>();
                        let want = match then {
                            Then::Nothing => y,
                            Then::Gelu => crate::router::bert::gelu_scalar(y),
                            Then::Add(r) => y + r[i * n + j],
                        };
                        assert!(
                            (got[i * n + j] - want).abs() < 1e-3 * (1.0 + want.abs()),
                            "({m},{k},{n}, wide {wide}, then {name}) [{i},{j}]"
                        );
                    }
                }
            }
        }
    }
}
