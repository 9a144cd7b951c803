//! The vector tier on Qdrant (gRPC through qdrant-client): one collection for every partition,
//! with the partition as an indexed keyword that every search filters on, so a fleet of gateways
//! shares one semantic cache. Points are keyed by a UUID derived from (partition, answer), so a
//! re-stored question replaces itself.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType, Filter, PointStruct,
    QueryPointsBuilder, Range, UpsertPointsBuilder, Value, VectorParamsBuilder,
};
use tokio::sync::OnceCell;

use super::{Neighbour, Point, VectorStore};
use crate::memory::sql::unix_now;
use crate::memory::{Key, MemoryError};

pub struct QdrantStore {
    client: Qdrant,
    collection: String,
    dimensions: u64,
    ready: OnceCell<()>,
}

fn backend(error: impl std::fmt::Display) -> MemoryError {
    MemoryError::Backend(format!("qdrant: {error}"))
}

impl QdrantStore {
    pub fn connect(
        url: &str,
        api_key: Option<&str>,
        collection: &str,
        dimensions: usize,
        timeout: Duration,
    ) -> Result<Self, MemoryError> {
        let client = Qdrant::from_url(url)
            .api_key(api_key.map(str::to_owned))
            .timeout(timeout)
            .connect_timeout(timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| MemoryError::Config(format!("cache.semantic.url: {e}")))?;
        Ok(Self { client, collection: collection.to_owned(), dimensions: dimensions as u64, ready: OnceCell::new() })
    }

    /// Creates the collection and its payload indexes the first time they are needed.
    async fn ready(&self) -> Result<(), MemoryError> {
        self.ready
            .get_or_try_init(|| async {
                if !self.client.collection_exists(&self.collection).await.map_err(backend)? {
                    let vectors = VectorParamsBuilder::new(self.dimensions, Distance::Cosine);
                    let create = CreateCollectionBuilder::new(&self.collection).vectors_config(vectors);
                    self.client.create_collection(create).await.map_err(backend)?;
                }
                for (field, kind) in [("partition", FieldType::Keyword), ("expires", FieldType::Integer)] {
                    let index = CreateFieldIndexCollectionBuilder::new(&self.collection, field, kind);
                    self.client.create_field_index(index).await.map_err(backend)?;
                }
                Ok(())
            })
            .await
            .copied()
    }
}

/// A stable point id for (partition, answer): UUID-shaped, as Qdrant wants.
pub(super) fn point_id(partition: &Key, answer: &Key) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(partition.0).chain_update(answer.0).finalize();
    let mut bytes: [u8; 16] = digest[..16].try_into().expect("sixteen bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

pub(super) fn parse_key(hex: &str) -> Option<Key> {
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Key(key))
}

fn text_of(payload: &HashMap<String, Value>, field: &str) -> Option<String> {
    match payload.get(field)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    async fn insert(&self, point: Point) -> Result<(), MemoryError> {
        self.ready().await?;
        let payload: HashMap<&str, Value> = HashMap::from([
            ("partition", point.partition.hex().into()),
            ("answer", point.answer.hex().into()),
            ("text", point.text.into()),
            ("expires", point.expires.into()),
        ]);
        let id = point_id(&point.partition, &point.answer);
        let points = vec![PointStruct::new(id, point.vector.to_vec(), payload)];
        let upsert = UpsertPointsBuilder::new(&self.collection, points).wait(true);
        self.client.upsert_points(upsert).await.map_err(backend)?;
        Ok(())
    }

    async fn nearest(&self, partition: &Key, vector: &[f32]) -> Result<Option<Neighbour>, MemoryError> {
        self.ready().await?;
        let filter = Filter::must([
            Condition::matches("partition", partition.hex()),
            Condition::range("expires", Range { gt: Some(unix_now() as f64), ..Range::default() }),
        ]);
        let query =
            QueryPointsBuilder::new(&self.collection).query(vector.to_vec()).filter(filter).limit(1).with_payload(true);
        let found = self.client.query(query).await.map_err(backend)?;
        Ok(found.result.into_iter().next().and_then(|point| {
            let answer = parse_key(&text_of(&point.payload, "answer")?)?;
            Some(Neighbour { answer, text: text_of(&point.payload, "text")?, score: point.score })
        }))
    }
}
