//! `cherrypick_gpu_memory_bytes{state}` for builds with the `nvml` feature (part of `cuda`): GPU 0's
//! memory (`used`, `total`) and this process's share of it (`process`), read through NVML at scrape
//! time. NVML is loaded at run time, so the build needs no NVIDIA library; without a driver the
//! gauge stays absent.

use std::sync::OnceLock;

use prometheus::IntGaugeVec;

pub struct GpuMemory {
    gauge: IntGaugeVec,
    nvml: OnceLock<Option<nvml_wrapper::Nvml>>,
}

impl GpuMemory {
    pub fn new(gauge: IntGaugeVec) -> Self {
        Self { gauge, nvml: OnceLock::new() }
    }

    /// Reads the memory of GPU 0 (the one the router uses). Blocking: a few NVML calls.
    pub fn refresh(&self) {
        let nvml = self.nvml.get_or_init(|| match nvml_wrapper::Nvml::init() {
            Ok(nvml) => Some(nvml),
            Err(error) => {
                tracing::info!(%error, "NVML unavailable: no GPU memory metrics");
                None
            }
        });
        let Some(device) = nvml.as_ref().and_then(|n| n.device_by_index(0).ok()) else { return };
        if let Ok(memory) = device.memory_info() {
            self.gauge.with_label_values(&["used"]).set(memory.used as i64);
            self.gauge.with_label_values(&["total"]).set(memory.total as i64);
        }
        if let Ok(processes) = device.running_compute_processes() {
            let own = processes
                .iter()
                .filter(|p| p.pid == std::process::id())
                .map(|p| match p.used_gpu_memory {
                    nvml_wrapper::enums::device::UsedGpuMemory::Used(bytes) => bytes,
                    nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => 0,
                })
                .sum::<u64>();
            self.gauge.with_label_values(&["process"]).set(own as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without an NVIDIA driver (as on CI) a refresh is harmless and sets nothing; with one, it
    /// reports a total larger than what is used (`cargo test --features nvml`).
    #[test]
    fn refresh_reports_what_the_driver_has() {
        let gauge = IntGaugeVec::new(prometheus::Opts::new("g", "g"), &["state"]).unwrap();
        let gpu = GpuMemory::new(gauge.clone());
        gpu.refresh();
        gpu.refresh();
        match gpu.nvml.get().and_then(Option::as_ref) {
            None => assert!(gauge.get_metric_with_label_values(&["total"]).unwrap().get() == 0),
            Some(_) => {
                let value = |state: &str| gauge.get_metric_with_label_values(&[state]).unwrap().get();
                assert!(value("total") >= value("used") && value("total") > 0);
            }
        }
    }
}
