//! `AppState`: what handlers share. Cheap to clone; everything inside is behind an `Arc`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::gateway::Gateway;
use crate::store::Store;
use crate::store::log::RequestLog;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub metrics: Arc<Metrics>,
    /// Keys, teams, spend, the request log and feedback.
    pub store: Arc<Store>,
    pub request_log: Option<RequestLog>,
    /// `Authorization: Bearer` value required on `/v1`, if any.
    pub master_key: Option<Arc<str>>,
    pub max_body_bytes: usize,
    pub keep_alive: Duration,
    /// Set once shutdown begins: `/ready` answers 503 so load balancers stop sending traffic.
    pub draining: Arc<AtomicBool>,
}
