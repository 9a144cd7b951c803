//! L1: answers in process memory, shared by every core. moka bounds it by bytes (each entry
//! weighs its encoded size plus bookkeeping) and expires entries by their own TTL, capped by the
//! tier's.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;

use super::tier::Tier;
use super::{Key, MemoryError};

/// moka's and the map's own cost per entry, beyond the value bytes.
const ENTRY_OVERHEAD: u32 = 96;

#[derive(Clone)]
struct Stored {
    entry: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Key, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Stored, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(&self, _: &Key, value: &Stored, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct L1 {
    cache: Cache<Key, Stored>,
    max_ttl: Duration,
}

impl L1 {
    pub fn new(max_bytes: u64, max_ttl: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, stored: &Stored| {
                u32::try_from(stored.entry.len()).unwrap_or(u32::MAX).saturating_add(ENTRY_OVERHEAD)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { cache, max_ttl }
    }
}

#[async_trait]
impl Tier for L1 {
    fn name(&self) -> &'static str {
        "l1"
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>, MemoryError> {
        Ok(self.cache.get(key).await.map(|stored| stored.entry))
    }

    async fn put(&self, key: &Key, entry: &Bytes, ttl: Duration) -> Result<(), MemoryError> {
        self.cache.insert(*key, Stored { entry: entry.clone(), ttl: ttl.min(self.max_ttl) }).await;
        Ok(())
    }

    fn usage(&self) -> Option<(u64, u64)> {
        Some((self.cache.weighted_size(), self.cache.entry_count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[tokio::test]
    async fn entries_expire_by_their_own_ttl_capped_by_the_tier() {
        let l1 = L1::new(1 << 20, Duration::from_millis(200));
        let entry = Bytes::from_static(b"answer");
        l1.put(&key(1), &entry, Duration::from_millis(50)).await.unwrap();
        l1.put(&key(2), &entry, Duration::from_secs(3600)).await.unwrap();
        assert_eq!(l1.get(&key(1)).await.unwrap(), Some(entry.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(l1.get(&key(1)).await.unwrap(), None, "its own 50 ms TTL");
        assert!(l1.get(&key(2)).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(l1.get(&key(2)).await.unwrap(), None, "capped at the tier's 200 ms");
    }

    #[tokio::test]
    async fn the_byte_budget_holds() {
        let l1 = L1::new(100 * 1024, Duration::from_secs(60));
        let entry = Bytes::from(vec![7u8; 10 * 1024]);
        for n in 0..50 {
            l1.put(&key(n), &entry, Duration::from_secs(60)).await.unwrap();
        }
        l1.cache.run_pending_tasks().await;
        let (bytes, entries) = l1.usage().unwrap();
        assert!(bytes <= 100 * 1024, "{bytes} bytes held");
        assert!((5..=10).contains(&entries), "{entries} entries held");
    }
}
