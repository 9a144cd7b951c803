//! The one way the gateway builds a Redis client (L2 and the shared limits): standalone, sentinel
//! and cluster deployments from the URL scheme, commands bounded by `timeout`, reconnecting forever
//! in the background, so a Redis that is down at start does not hold the gateway up.

use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};

/// A connecting client for `url`; the error names `what` (the config key).
pub fn connect(url: &str, timeout: Duration, what: &str) -> Result<Client, String> {
    let config = Config::from_url(url).map_err(|e| format!("{what}: {e}"))?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = timeout.max(Duration::from_millis(500));
            c.internal_command_timeout = timeout.max(Duration::from_millis(500));
        })
        .with_performance_config(|p| p.default_command_timeout = timeout)
        // Retry forever, 100 ms to 5 s apart.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .map_err(|e| format!("{what}: {e}"))?;
    client.connect();
    Ok(client)
}
