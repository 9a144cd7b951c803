//! A circuit breaker per provider: closed → open when the failure ratio over the last calls reaches
//! the threshold → half-open after the open time, letting a few probes through → closed when they
//! all succeed (open again on a failure). The state is a small struct behind a std mutex, held for a
//! few instructions and never across an await.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::time::Instant;

use crate::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// `cherrypick_circuit_state`: 0 closed, 1 half-open, 2 open.
    fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
    gauge: IntGauge,
}

struct State {
    phase: Phase,
    /// The last calls' outcomes (true: failed), oldest first.
    window: VecDeque<bool>,
    failures: u32,
    opened_at: Instant,
    /// Half-open: probes let through, and how many succeeded.
    probes: u32,
    probe_successes: u32,
}

/// A call the breaker let through; its outcome must be reported with `record`.
#[must_use]
pub struct Ticket {
    probe: bool,
}

impl Breaker {
    pub fn new(config: BreakerConfig, gauge: IntGauge) -> Self {
        gauge.set(0);
        let state = State {
            phase: Phase::Closed,
            window: VecDeque::with_capacity(config.window as usize),
            failures: 0,
            opened_at: Instant::now(),
            probes: 0,
            probe_successes: 0,
        };
        Self { config, state: Mutex::new(state), gauge }
    }

    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters unusable: keep going.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go: `None` while the circuit is open (or its probes are all out).
    pub fn admit(&self) -> Option<Ticket> {
        if !self.config.enabled {
            return Some(Ticket { probe: false });
        }
        let mut state = self.lock();
        if state.phase == Phase::Open && state.opened_at.elapsed() >= Duration::from_secs_f64(self.config.open_secs) {
            state.phase = Phase::HalfOpen;
            state.probes = 0;
            state.probe_successes = 0;
            self.gauge.set(Phase::HalfOpen.gauge_value());
        }
        match state.phase {
            Phase::Closed => Some(Ticket { probe: false }),
            Phase::Open => None,
            Phase::HalfOpen if state.probes < self.config.half_open_probes => {
                state.probes += 1;
                Some(Ticket { probe: true })
            }
            Phase::HalfOpen => None,
        }
    }

    /// The outcome of an admitted call: `failed` for failures that may pass (the provider's
    /// trouble), not for the client's own errors.
    pub fn record(&self, ticket: Ticket, failed: bool) {
        if !self.config.enabled {
            return;
        }
        let mut state = self.lock();
        match state.phase {
            Phase::HalfOpen if ticket.probe => {
                if failed {
                    self.open(&mut state);
                } else {
                    state.probe_successes += 1;
                    if state.probe_successes >= self.config.half_open_probes {
                        state.phase = Phase::Closed;
                        state.window.clear();
                        state.failures = 0;
                        self.gauge.set(Phase::Closed.gauge_value());
                    }
                }
            }
            Phase::Closed => {
                if state.window.len() >= self.config.window as usize
                    && let Some(oldest) = state.window.pop_front()
                {
                    state.failures -= u32::from(oldest);
                }
                state.window.push_back(failed);
                state.failures += u32::from(failed);
                let calls = state.window.len() as u32;
                if calls >= self.config.min_calls
                    && f64::from(state.failures) >= self.config.failure_ratio * f64::from(calls)
                {
                    self.open(&mut state);
                }
            }
            // A call admitted before the circuit opened, or a stale probe: it changes nothing.
            Phase::Open | Phase::HalfOpen => {}
        }
    }

    /// Gives back a ticket whose call was not made (another breaker refused it): a probe slot
    /// becomes free again.
    pub fn release(&self, ticket: Ticket) {
        if ticket.probe {
            let mut state = self.lock();
            if state.phase == Phase::HalfOpen {
                state.probes = state.probes.saturating_sub(1);
            }
        }
    }

    fn open(&self, state: &mut State) {
        state.phase = Phase::Open;
        state.opened_at = Instant::now();
        state.window.clear();
        state.failures = 0;
        self.gauge.set(Phase::Open.gauge_value());
    }
}

/// The two breakers a call passes: its provider's (shared by the provider's models) and its model
/// deployment's own, so one failing deployment does not cut off the provider's others.
pub struct Breakers {
    pub provider: Arc<Breaker>,
    pub deployment: Breaker,
}

impl Breakers {
    pub fn admit(&self) -> Option<(Ticket, Ticket)> {
        let deployment = self.deployment.admit()?;
        match self.provider.admit() {
            Some(provider) => Some((deployment, provider)),
            None => {
                self.deployment.release(deployment);
                None
            }
        }
    }

    pub fn record(&self, (deployment, provider): (Ticket, Ticket), failed: bool) {
        self.deployment.record(deployment, failed);
        self.provider.record(provider, failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        let config = BreakerConfig { window: 10, min_calls: 4, ..BreakerConfig::default() };
        Breaker::new(config, IntGauge::new("g", "g").unwrap())
    }

    fn call(breaker: &Breaker, failed: bool) -> bool {
        match breaker.admit() {
            Some(ticket) => {
                breaker.record(ticket, failed);
                true
            }
            None => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_failure_ratio_half_opens_after_the_open_time_and_closes_on_probes() {
        let b = breaker();
        for failed in [false, true, false] {
            assert!(call(&b, failed));
        }
        assert_eq!(b.phase(), Phase::Closed, "too few calls to judge");
        assert!(call(&b, true));
        assert_eq!(b.phase(), Phase::Open, "2 of 4 failed: ratio 0.5");
        assert_eq!(b.gauge.get(), 2);
        assert!(!call(&b, false), "refused while open");

        tokio::time::advance(Duration::from_secs(10)).await;
        let probes: Vec<Ticket> = (0..3).map(|_| b.admit().expect("a probe")).collect();
        assert_eq!(b.phase(), Phase::HalfOpen);
        assert!(b.admit().is_none(), "only three probes");
        for probe in probes {
            b.record(probe, false);
        }
        assert_eq!(b.phase(), Phase::Closed);
        assert_eq!(b.gauge.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_and_client_errors_never_open_it() {
        let b = breaker();
        for _ in 0..4 {
            call(&b, true);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(call(&b, true));
        assert_eq!(b.phase(), Phase::Open);
        assert!(!call(&b, false));

        let healthy = breaker();
        for _ in 0..50 {
            assert!(call(&healthy, false));
        }
        assert_eq!(healthy.phase(), Phase::Closed);
    }
}
