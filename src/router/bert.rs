//! A BERT encoder forward pass for inference, on candle tensors, built for small batches of short
//! prompts. It reads the same weights as candle-transformers' `BertModel` and computes the same
//! function; what differs is measured (`benches/router.rs`, BENCHMARKS.md):
//!
//! - weights are transposed once at load into contiguous `(in, out)` matrices: a matmul against a
//!   transposed view costs 1.6x more at 8-32 tokens (the view is re-packed on every call);
//! - query, key and value are one fused `(hidden, 3 × hidden)` matmul instead of three;
//! - activations stay 2-D `(tokens, hidden)` between layers (no per-layer reshapes or copies);
//! - GELU is the exact-erf GELU evaluated with a branch-free rational erf that the compiler
//!   vectorises (candle's scalar erf path costs about 5 ns an element);
//! - on the CPU, attention runs in one pass per head straight from the fused QKV output
//!   ([`super::attention`]): no head transposes, no score tensor, a vectorised `exp`;
//! - on the CPU, GELU and the residual adds run inside the dense layers' kernel, on each tile of
//!   the output while it is in cache, rather than as passes of their own;
//! - layer norm uses candle-nn's fused single-pass kernel;
//! - a batch without padding skips the attention mask.

use candle_core::{CpuStorage, CustomOp1, D, DType, Device, Layout, Module, Shape, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::attention;
use super::small_matmul::{self, Then};
use candle_transformers::models::bert::{Config as BertConfig, HiddenAct};

/// A dense layer with its weight stored `(in, out)`.
struct Dense {
    weight: Tensor,
    bias: Tensor,
    /// The weights regrouped for the few-rows kernel, when this CPU can run it.
    packed: Option<small_matmul::Packed>,
    bias_values: Vec<f32>,
}

impl Dense {
    fn load(vb: &VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?.t()?.contiguous()?;
        Self::new(weight, vb.get(outputs, "bias")?)
    }

    fn new(weight: Tensor, bias: Tensor) -> candle_core::Result<Self> {
        let packed = if weight.device().is_cpu() && small_matmul::available() {
            let (k, n) = weight.dims2()?;
            Some(small_matmul::Packed::new(&weight.flatten_all()?.to_vec1::<f32>()?, k, n))
        } else {
            None
        };
        let bias_values = bias.to_vec1::<f32>()?;
        Ok(Self { weight, bias, packed, bias_values })
    }

    /// Several layers fused side by side into one (query, key, value).
    fn fused(parts: &[Dense]) -> candle_core::Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight).collect();
        let biases: Vec<&Tensor> = parts.iter().map(|p| &p.bias).collect();
        Self::new(Tensor::cat(&weights, 1)?.contiguous()?, Tensor::cat(&biases, 0)?)
    }

    /// `x · W + b`, then `after`: inside the packed kernel where it runs, as tensor ops elsewhere.
    fn forward(&self, x: &Tensor, after: After) -> candle_core::Result<Tensor> {
        let m = x.dim(0)?;
        match &self.packed {
            Some(packed) if (m <= SMALL_ROWS || small_matmul::avx512()) && x.dtype() == DType::F32 => {
                let product = |x: &[f32], then: Then| small_matmul::matmul_bias(x, packed, &self.bias_values, m, then);
                let y = with_cpu_values(x, |x| match after {
                    After::Nothing => Ok(product(x, Then::Nothing)),
                    After::Gelu => Ok(product(x, Then::Gelu)),
                    After::Residual(residual) => with_cpu_values(residual, |r| product(x, Then::Add(r))),
                })??;
                Tensor::from_vec(y, (m, packed.columns()), x.device())
            }
            _ => {
                let y = x.matmul(&self.weight)?.broadcast_add(&self.bias)?;
                match after {
                    After::Nothing => Ok(y),
                    After::Gelu => gelu(&y),
                    After::Residual(residual) => y + residual,
                }
            }
        }
    }
}

/// What follows a dense layer in BERT: nothing, the exact GELU, or the residual add before a layer
/// norm.
#[derive(Clone, Copy)]
enum After<'a> {
    Nothing,
    Gelu,
    Residual(&'a Tensor),
}

/// Up to this many rows (tokens in a batch) a dense layer uses the packed-weight AVX2 kernel; above
/// it, gemm (measured: `cargo bench --bench router -- forward`). With AVX-512 the packed kernel is
/// used at every size: the gemm crate has no AVX-512 path on stable Rust.
const SMALL_ROWS: usize = 256;

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    up: Dense,
    down: Dense,
    output_norm: LayerNorm,
}

pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    activation: HiddenAct,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    device: Device,
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(size, eps, vb)
}

impl Bert {
    pub fn load(vb: VarBuilder, config: &BertConfig) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let (h, i, eps) = (config.hidden_size, config.intermediate_size, config.layer_norm_eps);
        let e = vb.pp("embeddings");
        let token_types = e.pp("token_type_embeddings").get((config.type_vocab_size, h), "weight")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{n}"));
            let a = l.pp("attention");
            let parts = [
                Dense::load(&a.pp("self.query"), h, h)?,
                Dense::load(&a.pp("self.key"), h, h)?,
                Dense::load(&a.pp("self.value"), h, h)?,
            ];
            layers.push(Layer {
                qkv: Dense::fused(&parts)?,
                attention_out: Dense::load(&a.pp("output.dense"), h, h)?,
                attention_norm: layer_norm(a.pp("output.LayerNorm"), h, eps)?,
                up: Dense::load(&l.pp("intermediate.dense"), h, i)?,
                down: Dense::load(&l.pp("output.dense"), i, h)?,
                output_norm: layer_norm(l.pp("output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word: e.pp("word_embeddings").get((config.vocab_size, h), "weight")?,
            position: e.pp("position_embeddings").get((config.max_position_embeddings, h), "weight")?,
            token_type: token_types.get(0)?,
            embedding_norm: layer_norm(e.pp("LayerNorm"), h, eps)?,
            layers,
            activation: config.hidden_act,
            heads: config.num_attention_heads,
            head_dim: h / config.num_attention_heads,
            hidden: h,
            device: vb.device().clone(),
        })
    }

    /// Hidden states `(batch, len, hidden)` for row-major token ids and attention mask (1 = token,
    /// 0 = padding), all inputs of segment 0.
    pub fn forward(&self, ids: &[u32], mask: &[u32], batch: usize, len: usize) -> candle_core::Result<Tensor> {
        let ids = Tensor::from_slice(ids, batch * len, &self.device)?;
        let positions = self.position.narrow(0, 0, len)?;
        let positions = if batch == 1 { positions } else { positions.repeat((batch, 1))? };
        let x = self.word.index_select(&ids, 0)?.add(&positions)?.broadcast_add(&self.token_type)?;
        let mut x = self.embedding_norm.forward(&x)?;
        let shape = attention::Heads { batch, len, heads: self.heads, head_dim: self.head_dim };
        // A batch without padding needs no mask at all. Off the CPU, padding gets a large negative
        // score so softmax gives it no weight.
        let padded = mask.contains(&0).then_some(mask);
        let bias = match padded {
            Some(mask) if !self.device.is_cpu() => {
                let values: Vec<f32> = mask.iter().map(|&m| if m == 0 { -1e30 } else { 0.0 }).collect();
                Some(Tensor::from_vec(values, (batch, 1, 1, len), &self.device)?)
            }
            _ => None,
        };
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, After::Nothing)?;
            let context = if self.device.is_cpu() {
                let values = with_cpu_values(&qkv, |qkv| attention::attention(qkv, padded, shape))?;
                Tensor::from_vec(values, (batch * len, self.hidden), &self.device)?
            } else {
                self.attention_tensors(&qkv, bias.as_ref(), shape)?
            };
            x = layer.attention_norm.forward(&layer.attention_out.forward(&context, After::Residual(&x))?)?;
            let up = match self.activation {
                HiddenAct::Gelu => layer.up.forward(&x, After::Gelu)?,
                HiddenAct::GeluApproximate => layer.up.forward(&x, After::Nothing)?.gelu()?,
                HiddenAct::Relu => layer.up.forward(&x, After::Nothing)?.relu()?,
            };
            x = layer.output_norm.forward(&layer.down.forward(&up, After::Residual(&x))?)?;
        }
        x.reshape((batch, len, self.hidden))
    }
}

impl Bert {
    /// Attention as tensor operations, for devices other than the CPU.
    fn attention_tensors(
        &self,
        qkv: &Tensor,
        bias: Option<&Tensor>,
        shape: attention::Heads,
    ) -> candle_core::Result<Tensor> {
        let attention::Heads { batch, len, heads, head_dim } = shape;
        let qkv = qkv.reshape((batch, len, 3, heads, head_dim))?;
        let part = |k: usize| qkv.narrow(2, k, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let mut scores = (q.matmul(&k.t()?)? * (1.0 / (head_dim as f64).sqrt()))?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((batch * len, self.hidden))
    }
}

/// Runs `f` over a CPU tensor's f32 values, without a copy when the tensor is contiguous.
fn with_cpu_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&cpu.as_slice::<f32>()?[start..end]));
        }
    }
    Ok(f(&t.flatten_all()?.to_vec1::<f32>()?))
}

/// Exact (erf) GELU: the fast kernel on the CPU, candle's own elsewhere.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous() {
        x.apply_op1_no_bwd(&FastGelu)
    } else {
        x.gelu_erf()
    }
}

struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("fast-gelu-erf takes f32") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fast-gelu-erf takes a contiguous tensor")
        };
        let out: Vec<f32> = data[start..end].iter().map(|&x| gelu_scalar(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf for f32 as a rational polynomial on [-4, 4] (the approximation Eigen and XLA use; max error
/// a few ULP), branch-free so a loop over it vectorises. Plain `a * b + c`, not `mul_add`: without
/// a target FMA feature `mul_add` is a libm call per operation.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_4e-4;
    p = p * x2 + -2.954_600_1e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

/// Mean over the real tokens, then unit length: one embedding per row.
pub fn mean_pool_normalised(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (converges well on [-4, 4]).
    fn erf_reference(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate_to_float_precision() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let expected =
                if x.abs() > 4.0 { x.signum() * erf_reference(4.0_f64.min(x.abs())) } else { erf_reference(x) };
            worst = worst.max((f64::from(erf(x as f32)) - expected).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
    }

    #[test]
    fn gelu_matches_candle() {
        let values: Vec<f32> = (-80..80).map(|i| i as f32 / 10.0).collect();
        let t = Tensor::from_vec(values, 160, &Device::Cpu).unwrap();
        let ours = gelu(&t).unwrap().to_vec1::<f32>().unwrap();
        let theirs = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
