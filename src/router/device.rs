//! Where the encoder runs: the CPU, or an NVIDIA GPU with the `cuda` feature.

use candle_core::Device;

use super::RouterError;

/// `cpu`, or `cuda` (GPU 0 when built with the `cuda` feature and one is present; otherwise the CPU,
/// with a warning).
pub fn select(name: &str) -> Result<Device, RouterError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(cuda()),
        other => Err(RouterError::Load(format!("unknown device `{other}`"))),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Device {
    match Device::new_cuda(0) {
        Ok(device) => device,
        Err(e) => {
            tracing::warn!(error = %e, "no usable GPU; the router runs on the CPU");
            Device::Cpu
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Device {
    tracing::warn!("router.device = \"cuda\" but this build has no `cuda` feature; the router runs on the CPU");
    Device::Cpu
}

/// Limits the CPU threads candle's matrix products use (it reads `RAYON_NUM_THREADS`). Call before
/// any other thread starts: the environment is process-wide.
pub fn set_threads_before_start(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called from `main` before the runtime or any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}
