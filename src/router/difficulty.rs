//! A prompt's difficulty as a second opinion beside the MLP's per-model qualities.
//!
//! The MLP learns, above all, which model is good at which benchmark: on a benchmark it never saw
//! it routes no better than chance (BENCHMARKS.md, "Out of domain"). What does carry to an unseen
//! benchmark is how hard a prompt is *compared with the other prompts of its benchmark*: the share
//! of all labelled models that fail it, centred within each `task`, predicted from the embedding by
//! ridge regression. Each model also gets a slope, how much its own outcome falls with that
//! difficulty (strong models fall less). For a prompt unlike the training prompts, a model's
//! predicted quality then moves by `strength × weight × slope × difficulty` (strength 0 for a
//! familiar prompt, rising to 1 for an unfamiliar one): on hard prompts towards the models that
//! hold up on hard prompts, as in item response theory. The slope is in quality per unit of the
//! failure share and the difficulty in standard deviations of the ridge predictions, so `weight`
//! also carries the scale between the two; it was set by cross-validation, not derived.

use candle_core::{DType, Device, Tensor};

use super::train::Dataset;

/// The fitted difficulty direction, per-model slopes, and the prompts that define the MLP's domain.
#[derive(Debug, Clone)]
pub struct Difficulty {
    /// Ridge weights over the embedding, already divided by the predictions' standard deviation.
    pub direction: Vec<f32>,
    /// Subtracted after the dot product, so the training predictions have mean 0.
    pub offset: f32,
    /// Per model (the selector's order): the change in quality per unit of centred difficulty.
    pub slopes: Vec<f32>,
    /// How far the slopes move a prediction per standard deviation of difficulty, at full strength.
    pub weight: f32,
    /// Up to `MAX_ANCHORS` training prompts' embeddings, transposed to `(dim, prompts)` and
    /// contiguous so that a batch's similarities are one plain matrix product: a prompt like them
    /// is in the MLP's domain, where the MLP already knows what the difficulty would add.
    pub anchors_t: Tensor,
    /// Familiarity (mean cosine of the nearest anchors) at and above which the difficulty is off,
    /// and at and below which it is at full strength; linear between.
    pub near: f32,
    pub far: f32,
}

/// Ridge regularisation of the difficulty direction, for L2-normalised embeddings.
pub const DEFAULT_ALPHA: f64 = 300.0;

/// The default `weight`. With `SPAN` it was chosen on `router crossval` of the RouterBench
/// training data (BENCHMARKS.md): out of domain it lifts AIQ and APGR, in domain it barely moves them.
pub const DEFAULT_WEIGHT: f32 = 0.5;

/// At most `max` of `rows`, evenly spaced through them.
fn spread_out(rows: &[usize], max: usize) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    (0..max).map(|k| rows[k * rows.len() / max]).collect()
}

/// Training prompts kept as anchors. Familiarity only has to tell a benchmark the selector saw from
/// one it did not; 512 anchors do that about as well as all 2,205 RouterBench prompts
/// (cross-validated figures within 0.002 AIQ and 0.003 APGR) at a quarter of the cost per prompt.
const MAX_ANCHORS: usize = 512;

/// Below this variance a target or a prediction is rounding, not signal.
const MIN_VARIANCE: f64 = 1e-12;

/// Anchors averaged into a prompt's familiarity.
const NEAREST: usize = 10;

/// How much less familiar than `near` a prompt must be for the difficulty's full strength.
const SPAN: f32 = 0.15;

/// `near` is this quantile of the training prompts' own familiarity (each against the others).
const NEAR_QUANTILE: f64 = 0.1;

impl Difficulty {
    /// Fits on `rows` of `data`; `groups[row]` is the row's benchmark (one group when the data has
    /// no `task`), within which difficulty and outcomes are centred. `None` when too few rows are
    /// labelled to fit anything.
    pub fn fit(
        data: &Dataset,
        rows: &[usize],
        groups: &[usize],
        alpha: f64,
        weight: f32,
        device: &Device,
    ) -> candle_core::Result<Option<Self>> {
        let (dim, width) = (data.dim, data.models.len());
        let labelled: Vec<usize> =
            rows.iter().copied().filter(|&r| data.mask[r * width..(r + 1) * width].iter().any(|&m| m > 0.0)).collect();
        if labelled.len() <= NEAREST || dim == 0 {
            return Ok(None);
        }
        let raw: Vec<f64> = labelled.iter().map(|&r| 1.0 - mean_label(data, r)).collect();
        let target = centred_within(&raw, &labelled, groups);
        // Prompts equally hard within each task leave only rounding: nothing to learn.
        if target.iter().map(|t| t * t).sum::<f64>() / (target.len() as f64) < MIN_VARIANCE {
            return Ok(None);
        }
        let Some((w, offset)) = ridge(data, &labelled, &target, alpha) else { return Ok(None) };
        let predictions: Vec<f64> = labelled
            .iter()
            .map(|&r| {
                w.iter().zip(&data.x[r * dim..(r + 1) * dim]).map(|(a, &b)| a * f64::from(b)).sum::<f64>() - offset
            })
            .collect();
        let spread = (predictions.iter().map(|p| p * p).sum::<f64>() / predictions.len() as f64).sqrt();
        if spread.is_nan() || spread * spread < MIN_VARIANCE {
            return Ok(None);
        }
        let slopes = (0..width).map(|m| slope(data, &labelled, groups, &target, m)).collect();

        let anchor_rows = spread_out(&labelled, MAX_ANCHORS);
        let anchors = Tensor::from_vec(data.rows_x(&anchor_rows), (anchor_rows.len(), dim), device)?;
        let anchors_t = anchors.t()?.contiguous()?;
        let mut own: Vec<f32> = familiarities(&anchors, &anchors_t, true)?;
        own.sort_by(f32::total_cmp);
        let near = own[((own.len() - 1) as f64 * NEAR_QUANTILE) as usize];
        Ok(Some(Self {
            direction: w.iter().map(|v| (v / spread) as f32).collect(),
            offset: (offset / spread) as f32,
            slopes,
            weight,
            anchors_t,
            near,
            far: near - SPAN,
        }))
    }

    /// Moves `qualities` (`rows × models`) by each row's difficulty, as far as the row is
    /// unfamiliar. `x` is the rows' embeddings as a `(rows, dim)` tensor on the anchors' device,
    /// `embeddings` the same rows on the host.
    pub fn adjust(&self, x: &Tensor, embeddings: &[f32], qualities: &mut [f32]) -> candle_core::Result<()> {
        let width = self.slopes.len();
        if width == 0 {
            return Ok(());
        }
        let strengths = familiarities(x, &self.anchors_t, false)?
            .into_iter()
            .map(|f| ((self.near - f) / (self.near - self.far)).clamp(0.0, 1.0));
        let rows = embeddings.chunks_exact(self.direction.len());
        for ((strength, x), q) in strengths.zip(rows).zip(qualities.chunks_exact_mut(width)) {
            if strength == 0.0 {
                continue;
            }
            let z = x.iter().zip(&self.direction).map(|(a, b)| a * b).sum::<f32>() - self.offset;
            for (q, s) in q.iter_mut().zip(&self.slopes) {
                *q += strength * self.weight * s * z;
            }
        }
        Ok(())
    }

    /// The tensors `save` writes beside the MLP's.
    pub fn tensors(&self) -> candle_core::Result<[(&'static str, Tensor); 3]> {
        let device = self.anchors_t.device();
        Ok([
            (DIRECTION, Tensor::new(self.direction.as_slice(), device)?),
            (SLOPES, Tensor::new(self.slopes.as_slice(), device)?),
            // Half precision: familiarity is a mean of cosines, and the file stays small.
            (ANCHORS, self.anchors_t.t()?.to_dtype(DType::F16)?.contiguous()?),
        ])
    }

    /// Rebuilds it from its card and `tensors` (removed from the map).
    pub fn from_parts(
        card: &DifficultyCard,
        mut take: impl FnMut(&str) -> Result<Tensor, String>,
    ) -> Result<Self, String> {
        let vector = |t: Tensor| t.to_dtype(DType::F32).and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string());
        let direction = vector(take(DIRECTION)?)?;
        let slopes = vector(take(SLOPES)?)?;
        let anchors = take(ANCHORS)?.to_dtype(DType::F32).map_err(|e| e.to_string())?;
        match anchors.dims2() {
            Ok((n, d)) if d == direction.len() && n > NEAREST => {}
            _ => return Err(format!("difficulty anchors must be more than {NEAREST} rows of the embedding's width")),
        }
        let anchor_values = anchors.flatten_all().and_then(|a| a.to_vec1::<f32>()).map_err(|e| e.to_string())?;
        // A hand-edited or damaged card must not turn every quality into NaN at request time.
        let scalars = [card.weight, card.offset, card.near, card.far];
        let finite = scalars.iter().chain(&direction).chain(&slopes).chain(&anchor_values).all(|v| v.is_finite());
        if !finite || card.near <= card.far {
            return Err("difficulty needs finite values and `near` above `far`".into());
        }
        let anchors_t = anchors.t().and_then(|a| a.contiguous()).map_err(|e| e.to_string())?;
        Ok(Self {
            direction,
            offset: card.offset,
            slopes,
            weight: card.weight,
            anchors_t,
            near: card.near,
            far: card.far,
        })
    }

    pub fn card(&self) -> DifficultyCard {
        DifficultyCard { weight: self.weight, offset: self.offset, near: self.near, far: self.far }
    }
}

/// The difficulty's scalars in `router.json` (its vectors are in `router.safetensors`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DifficultyCard {
    pub weight: f32,
    pub offset: f32,
    pub near: f32,
    pub far: f32,
}

pub const DIRECTION: &str = "difficulty.direction";
pub const SLOPES: &str = "difficulty.slopes";
pub const ANCHORS: &str = "difficulty.anchors";

/// Ridge regression with an intercept of `target` (one value per `rows[k]`) on the rows'
/// embeddings: solves (XᵀX + αI) w = Xᵀy over centred X. Returns `w` and the offset `w · mean(x)`.
fn ridge(data: &Dataset, rows: &[usize], target: &[f64], alpha: f64) -> Option<(Vec<f64>, f64)> {
    let dim = data.dim;
    let mut mean_x = vec![0f64; dim];
    for &r in rows {
        for (m, &v) in mean_x.iter_mut().zip(&data.x[r * dim..(r + 1) * dim]) {
            *m += f64::from(v);
        }
    }
    mean_x.iter_mut().for_each(|m| *m /= rows.len() as f64);
    let mut gram = vec![0f64; dim * dim];
    let mut xty = vec![0f64; dim];
    let mut row = vec![0f64; dim];
    for (&r, &y) in rows.iter().zip(target) {
        for ((c, &v), m) in row.iter_mut().zip(&data.x[r * dim..(r + 1) * dim]).zip(&mean_x) {
            *c = f64::from(v) - m;
        }
        for i in 0..dim {
            xty[i] += row[i] * y;
            for (g, &rj) in gram[i * dim..i * dim + i + 1].iter_mut().zip(&row) {
                *g += row[i] * rj;
            }
        }
    }
    for i in 0..dim {
        gram[i * dim + i] += alpha;
    }
    let w = cholesky_solve(&mut gram, &xty, dim)?;
    let offset = w.iter().zip(&mean_x).map(|(a, b)| a * b).sum();
    Some((w, offset))
}

/// Model `m`'s centred outcome regressed (through the origin) on the centred difficulty `target`.
fn slope(data: &Dataset, rows: &[usize], groups: &[usize], target: &[f64], m: usize) -> f32 {
    let width = data.models.len();
    let cells: Vec<usize> = (0..rows.len()).filter(|&k| data.mask[rows[k] * width + m] > 0.0).collect();
    let outcomes: Vec<f64> = cells.iter().map(|&k| f64::from(data.y[rows[k] * width + m])).collect();
    let cell_rows: Vec<usize> = cells.iter().map(|&k| rows[k]).collect();
    let outcomes = centred_within(&outcomes, &cell_rows, groups);
    let (mut num, mut den) = (0.0, 0.0);
    for (&k, y) in cells.iter().zip(&outcomes) {
        num += y * target[k];
        den += target[k] * target[k];
    }
    if den > MIN_VARIANCE { (num / den) as f32 } else { 0.0 }
}

/// Each row of `x`'s familiarity: the mean cosine of its `NEAREST` nearest anchors (all unit
/// vectors; `anchors_t` is `(dim, anchors)`). `same` when `x` is the anchors themselves: a row does
/// not count itself.
fn familiarities(x: &Tensor, anchors_t: &Tensor, same: bool) -> candle_core::Result<Vec<f32>> {
    let sims = x.matmul(anchors_t)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(sims
        .into_iter()
        .enumerate()
        .map(|(i, mut row)| {
            if same {
                row.swap_remove(i);
            }
            let k = NEAREST.min(row.len());
            if k == 0 {
                return 0.0;
            }
            let at = row.len() - k;
            row.select_nth_unstable_by(at, f32::total_cmp);
            row[at..].iter().sum::<f32>() / k as f32
        })
        .collect())
}

/// The mean of a row's labels over the models it has them for.
fn mean_label(data: &Dataset, row: usize) -> f64 {
    let width = data.models.len();
    let (mut sum, mut n) = (0.0, 0.0);
    for (y, m) in data.y[row * width..(row + 1) * width].iter().zip(&data.mask[row * width..(row + 1) * width]) {
        sum += f64::from(y * m);
        n += f64::from(*m);
    }
    sum / n.max(1.0)
}

/// `values[k]` (of `rows[k]`) minus the mean of its group.
fn centred_within(values: &[f64], rows: &[usize], groups: &[usize]) -> Vec<f64> {
    let count = rows.iter().map(|&r| groups[r] + 1).max().unwrap_or(0);
    let (mut sum, mut n) = (vec![0.0; count], vec![0.0; count]);
    for (&r, v) in rows.iter().zip(values) {
        sum[groups[r]] += v;
        n[groups[r]] += 1.0;
    }
    rows.iter().zip(values).map(|(&r, v)| v - sum[groups[r]] / n[groups[r]]).collect()
}

/// Solves `a x = b` for a symmetric positive definite `a` (lower triangle filled; overwritten by
/// its Cholesky factor). `None` if `a` is not positive definite.
fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIM: usize = 8;

    /// A unit vector: `hardness` along `e0`, a little `wobble` along `e[wobble_axis]`, the rest
    /// along the benchmark's own axis.
    fn prompt(hardness: f32, axis: usize, wobble: f32, wobble_axis: usize) -> [f32; DIM] {
        let mut v = [0.0; DIM];
        (v[0], v[wobble_axis]) = (0.5 * hardness, 0.1 * wobble);
        v[axis] = (1.0 - v[0] * v[0] - v[wobble_axis] * v[wobble_axis]).sqrt();
        v
    }

    /// Two benchmarks whose prompts differ in one direction each; along `e0` a prompt gets harder.
    /// The strong model fails only the hardest prompts, the weak one every hard half.
    fn benchmarks() -> (Dataset, Vec<usize>) {
        let (mut x, mut y, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        for group in 0..2 {
            for i in 0..200 {
                let hardness = i as f32 / 100.0 - 1.0;
                let wobble = ((i * 7919) % 13) as f32 / 13.0 - 0.5;
                x.extend(prompt(hardness, 1 + group, wobble, 3 + group));
                y.extend([f32::from(hardness < 0.8), f32::from(hardness < 0.0)]);
                groups.push(group);
            }
        }
        let mask = vec![1.0; y.len()];
        (Dataset { x, y, mask, dim: DIM, models: vec!["strong".into(), "weak".into()] }, groups)
    }

    fn fitted() -> Difficulty {
        let (data, groups) = benchmarks();
        let rows: Vec<usize> = (0..data.len()).collect();
        Difficulty::fit(&data, &rows, &groups, 1.0, 1.0, &Device::Cpu).unwrap().expect("fits")
    }

    fn adjusted(difficulty: &Difficulty, v: [f32; DIM]) -> [f32; 2] {
        let x = Tensor::from_slice(&v, (1, DIM), &Device::Cpu).unwrap();
        let mut q = [0.5f32, 0.5];
        difficulty.adjust(&x, &v, &mut q).unwrap();
        q
    }

    #[test]
    fn the_weak_model_falls_faster_with_difficulty() {
        let d = fitted();
        assert!(d.slopes[1] < d.slopes[0], "slopes {:?}", d.slopes);
        assert!(d.slopes[1] < 0.0);
        assert!(d.direction[0] > 0.0, "harder along e0: {:?}", d.direction);
    }

    #[test]
    fn familiar_prompts_are_left_alone_and_unfamiliar_ones_follow_their_difficulty() {
        let d = fitted();
        assert_eq!(adjusted(&d, prompt(0.9, 1, 0.0, 3)), [0.5, 0.5]);

        // A third benchmark: its own direction, far from every anchor.
        let new = |hardness: f32| adjusted(&d, prompt(hardness, 7, 0.0, 6));
        // Within it, the harder a prompt the more the strong model gains on the weak one (the
        // benchmark as a whole may shift: it lies where the training data had no variance).
        let (hard, easy) = (new(0.9), new(-0.9));
        assert!(hard[0] - hard[1] > easy[0] - easy[1] + 0.1, "hard {hard:?}, easy {easy:?}");
        assert!(hard[0] > hard[1], "hard {hard:?}");
    }

    fn tensors_of(d: &Difficulty) -> std::collections::HashMap<&'static str, Tensor> {
        d.tensors().unwrap().into_iter().collect()
    }

    fn rebuilt(
        card: &DifficultyCard,
        mut tensors: std::collections::HashMap<&str, Tensor>,
    ) -> Result<Difficulty, String> {
        Difficulty::from_parts(card, |name| tensors.remove(name).ok_or_else(|| name.to_owned()))
    }

    /// A unit vector `t` of the way from `b` to `a`.
    fn between(a: [f32; DIM], b: [f32; DIM], t: f32) -> [f32; DIM] {
        let mut v = [0.0; DIM];
        for (i, value) in v.iter_mut().enumerate() {
            *value = t * a[i] + (1.0 - t) * b[i];
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.map(|x| x / norm)
    }

    #[test]
    fn it_round_trips_through_its_card_and_tensors() {
        let d = fitted();
        let back = rebuilt(&d.card(), tensors_of(&d)).unwrap();
        // A familiar prompt, one on the ramp and one fully unfamiliar: the anchors (in f16) and
        // the scalars must come back, not only the slopes.
        assert_eq!(adjusted(&back, prompt(0.3, 1, 0.2, 3)), [0.5, 0.5]);
        let (seen, unseen) = (prompt(0.7, 1, 0.0, 3), prompt(0.7, 7, 0.0, 6));
        let on_ramp = (1..100)
            .map(|k| between(seen, unseen, k as f32 / 100.0))
            .find(|v| {
                let x = Tensor::from_slice(v, (1, DIM), &Device::Cpu).unwrap();
                let f = familiarities(&x, &d.anchors_t, false).unwrap()[0];
                f > d.far + 0.2 * SPAN && f < d.near - 0.2 * SPAN
            })
            .expect("a prompt part way between the familiar and the unfamiliar");
        for v in [on_ramp, unseen] {
            let (a, b) = (adjusted(&d, v), adjusted(&back, v));
            assert!(a != [0.5, 0.5], "the probe is adjusted");
            assert!((a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3, "{a:?} vs {b:?}");
        }
        // On the ramp the move is part of the full one.
        let (ramp, full) = (adjusted(&d, on_ramp), adjusted(&d, prompt(0.7, 7, 0.0, 6)));
        assert!((ramp[0] - ramp[1]).abs() < (full[0] - full[1]).abs() + 1e-6, "{ramp:?} vs {full:?}");
    }

    #[test]
    fn a_card_or_tensors_that_would_give_nan_are_refused() {
        let d = fitted();
        let mut card = d.card();
        card.far = card.near;
        assert!(rebuilt(&card, tensors_of(&d)).unwrap_err().contains("near"));

        let mut tensors = tensors_of(&d);
        let anchors = tensors[ANCHORS].to_dtype(DType::F32).unwrap();
        let mut values = anchors.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        values[3] = f32::NAN;
        tensors.insert(ANCHORS, Tensor::from_vec(values, anchors.dims(), &Device::Cpu).unwrap());
        assert!(rebuilt(&d.card(), tensors).unwrap_err().contains("finite"));

        let mut tensors = tensors_of(&d);
        tensors.insert(ANCHORS, tensors[ANCHORS].narrow(0, 0, NEAREST).unwrap());
        assert!(rebuilt(&d.card(), tensors).unwrap_err().contains("rows"));
    }

    #[test]
    fn cholesky_solves_a_positive_definite_system_and_refuses_an_indefinite_one() {
        let mut a = vec![4.0, 0.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, &[8.0, 7.0], 2).unwrap();
        assert!((x[0] - 1.25).abs() < 1e-12 && (x[1] - 1.5).abs() < 1e-12, "{x:?}");
        assert!(cholesky_solve(&mut [1.0, 0.0, 2.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn anchors_are_spread_through_the_rows() {
        let rows: Vec<usize> = (10..20).collect();
        assert_eq!(spread_out(&rows, 4), vec![10, 12, 15, 17]);
        assert_eq!(spread_out(&rows, 64), rows);
    }

    #[test]
    fn centring_is_within_each_group() {
        let centred = centred_within(&[1.0, 3.0, 10.0, 20.0], &[0, 1, 2, 3], &[0, 0, 1, 1]);
        assert_eq!(centred, vec![-1.0, 1.0, -5.0, 5.0]);
    }
}
