//! The vector tier: nearest earlier question inside a semantic partition. The embedded index is
//! the default; Qdrant and Weaviate hold the same points for a fleet of gateways.

pub mod embedded;
pub mod qdrant;
pub mod weaviate;

use std::sync::Arc;

use async_trait::async_trait;

use super::{Key, MemoryError};

/// One stored question: where it may answer (`partition`), which answer (`answer`, the exact key
/// of the stored entry), its embedding (unit length) and text (for the verifier).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub partition: Key,
    pub answer: Key,
    pub vector: Arc<[f32]>,
    pub text: String,
    /// Unix seconds after which the point is ignored.
    pub expires: i64,
}

/// The nearest stored question and its cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub answer: Key,
    pub text: String,
    pub score: f32,
}

#[async_trait]
pub trait VectorStore: Send + Sync {
    fn name(&self) -> &'static str;
    async fn insert(&self, point: Point) -> Result<(), MemoryError>;
    /// The nearest unexpired point of `partition`.
    async fn nearest(&self, partition: &Key, vector: &[f32]) -> Result<Option<Neighbour>, MemoryError>;
    /// `loading`, `up` or why not.
    fn state(&self) -> String {
        "up".into()
    }
    /// Bytes and points held in this process.
    fn usage(&self) -> Option<(u64, u64)> {
        None
    }
}
