//! L2: Redis through fred, shared by every gateway replica. Standalone, sentinel and cluster
//! deployments come from the URL scheme. fred reconnects on its own; until it has, calls fail fast
//! and the request goes on without L2.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::{Client, Expiration, KeysInterface};

use super::entry::{compress, decompress};
use super::tier::Tier;
use super::{Key, MemoryError};

pub struct L2 {
    client: Client,
    prefix: String,
}

impl L2 {
    /// Builds the client and starts connecting in the background: a Redis that is down at start
    /// does not hold the gateway up.
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, MemoryError> {
        let client = crate::redis_client::connect(url, timeout, "cache.l2.url").map_err(MemoryError::Config)?;
        Ok(Self { client, prefix: prefix.to_owned() })
    }

    fn redis_key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.hex())
    }
}

fn backend(error: fred::error::Error) -> MemoryError {
    MemoryError::Backend(error.to_string())
}

#[async_trait]
impl Tier for L2 {
    fn name(&self) -> &'static str {
        "l2"
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>, MemoryError> {
        let stored: Option<Vec<u8>> = self.client.get(self.redis_key(key)).await.map_err(backend)?;
        stored.map(|s| decompress(&s)).transpose()
    }

    async fn put(&self, key: &Key, entry: &Bytes, ttl: Duration) -> Result<(), MemoryError> {
        let seconds = ttl.as_secs().max(1) as i64;
        let value = compress(entry);
        self.client
            .set::<(), _, _>(self.redis_key(key), value.as_slice(), Some(Expiration::EX(seconds)), None, false)
            .await
            .map_err(backend)
    }
}
