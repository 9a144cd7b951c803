//! Where the encoder runs: the CPU, or an NVIDIA GPU with the `cuda` feature.

use candle_core::Device;

use super::RouterError;

/// `auto` (the default: GPU 0 when the build has the `cuda` feature and a GPU is present, else the
/// CPU), `cpu`, or `cuda` (like `auto`, but falling back to the CPU is worth a warning).
pub fn select(name: &str) -> Result<Device, RouterError> {
    match name {
        "auto" => Ok(cuda().unwrap_or(Device::Cpu)),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(cuda().unwrap_or_else(|why| {
            tracing::warn!(%why, "router.device = \"cuda\" but the router runs on the CPU");
            Device::Cpu
        })),
        other => Err(RouterError::Load(format!("unknown device `{other}` (auto, cpu or cuda)"))),
    }
}

/// Like [`select`], but a `cuda` that cannot be had is an error rather than the CPU: for tests and
/// benchmarks that must measure the device they name.
pub fn require(name: &str) -> Result<Device, RouterError> {
    match name {
        "cuda" => cuda().map_err(RouterError::Load),
        other => select(other),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device, String> {
    Device::new_cuda(0).map_err(|e| format!("no usable GPU: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device, String> {
    Err("this build has no `cuda` feature".into())
}

/// Limits the CPU threads candle's matrix products use (it reads `RAYON_NUM_THREADS`). Call before
/// any other thread starts: the environment is process-wide.
pub fn set_threads_before_start(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called from `main` before the runtime or any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_cpu_always_give_a_device_and_unknown_names_are_refused() {
        assert!(select("cpu").unwrap().is_cpu());
        let auto = select("auto").unwrap();
        assert_eq!(auto.is_cuda(), cuda().is_ok(), "auto takes the GPU exactly when one is usable");
        assert!(select("tpu").is_err());
    }

    #[test]
    fn cuda_falls_back_to_the_cpu_but_require_refuses() {
        match cuda() {
            Ok(_) => assert!(require("cuda").unwrap().is_cuda()),
            Err(_) => {
                assert!(select("cuda").unwrap().is_cpu());
                assert!(require("cuda").is_err());
            }
        }
    }
}
