//! The vector tier on Weaviate, through its REST and GraphQL API: one class for every partition,
//! the partition a `field`-tokenised text property that every search filters on. Objects are
//! written through the batch endpoint, which replaces an object with the same id.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::qdrant::{parse_key, point_id};
use super::{Neighbour, Point, VectorStore};
use crate::memory::sql::unix_now;
use crate::memory::{Key, MemoryError};

pub struct WeaviateStore {
    http: reqwest::Client,
    base: String,
    class: String,
    api_key: Option<String>,
    ready: OnceCell<()>,
}

fn backend(error: impl std::fmt::Display) -> MemoryError {
    MemoryError::Backend(format!("weaviate: {error}"))
}

/// Weaviate class names start with a capital letter and hold letters, digits and underscores.
pub fn class_name(collection: &str) -> Result<String, MemoryError> {
    let mut chars = collection.chars();
    let first = chars.next().ok_or_else(|| MemoryError::Config("cache.semantic.collection is empty".into()))?;
    if !collection.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || !first.is_ascii_alphabetic() {
        return Err(MemoryError::Config(format!(
            "cache.semantic.collection `{collection}`: Weaviate needs letters, digits and `_`, starting with a letter"
        )));
    }
    Ok(first.to_ascii_uppercase().to_string() + chars.as_str())
}

impl WeaviateStore {
    pub fn connect(url: &str, api_key: Option<&str>, collection: &str, timeout: Duration) -> Result<Self, MemoryError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| MemoryError::Config(e.to_string()))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            class: class_name(collection)?,
            api_key: api_key.map(str::to_owned),
            ready: OnceCell::new(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, MemoryError> {
        let response = request.send().await.map_err(|e| backend(e.without_url()))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(backend(format!("{status}: {body}")));
        }
        Ok(body)
    }

    async fn ready(&self) -> Result<(), MemoryError> {
        self.ready
            .get_or_try_init(|| async {
                let path = format!("/v1/schema/{}", self.class);
                let exists =
                    self.request(reqwest::Method::GET, &path).send().await.map_err(|e| backend(e.without_url()))?;
                if exists.status() == reqwest::StatusCode::NOT_FOUND {
                    let class = json!({
                        "class": self.class,
                        "vectorizer": "none",
                        "vectorIndexConfig": {"distance": "cosine"},
                        "properties": [
                            {"name": "partition", "dataType": ["text"], "tokenization": "field"},
                            {"name": "answer", "dataType": ["text"], "tokenization": "field"},
                            {"name": "text", "dataType": ["text"]},
                            {"name": "expires", "dataType": ["int"]},
                        ],
                    });
                    self.send(self.request(reqwest::Method::POST, "/v1/schema").json(&class)).await?;
                } else if !exists.status().is_success() {
                    return Err(backend(format!("schema lookup answered {}", exists.status())));
                }
                Ok(())
            })
            .await
            .copied()
    }
}

#[async_trait]
impl VectorStore for WeaviateStore {
    fn name(&self) -> &'static str {
        "weaviate"
    }

    async fn insert(&self, point: Point) -> Result<(), MemoryError> {
        self.ready().await?;
        let object = json!({
            "class": self.class,
            "id": point_id(&point.partition, &point.answer),
            "vector": &*point.vector,
            "properties": {
                "partition": point.partition.hex(),
                "answer": point.answer.hex(),
                "text": point.text,
                "expires": point.expires,
            },
        });
        let body = json!({"objects": [object]});
        let result = self.send(self.request(reqwest::Method::POST, "/v1/batch/objects").json(&body)).await?;
        // The batch endpoint answers 200 and reports each object's failure inside the body.
        if let Some(errors) = result.pointer("/0/result/errors").filter(|e| !e.is_null()) {
            return Err(backend(errors));
        }
        Ok(())
    }

    async fn nearest(&self, partition: &Key, vector: &[f32]) -> Result<Option<Neighbour>, MemoryError> {
        self.ready().await?;
        let vector = serde_json::to_string(vector).map_err(backend)?;
        // Every value spliced in is hex, digits or a checked class name: nothing to escape.
        let query = format!(
            r#"{{ Get {{ {class}(nearVector: {{vector: {vector}}}, where: {{operator: And, operands: [{{path: ["partition"], operator: Equal, valueText: "{partition}"}}, {{path: ["expires"], operator: GreaterThan, valueInt: {now}}}]}}, limit: 1) {{ answer text _additional {{ distance }} }} }} }}"#,
            class = self.class,
            partition = partition.hex(),
            now = unix_now(),
        );
        let result =
            self.send(self.request(reqwest::Method::POST, "/v1/graphql").json(&json!({"query": query}))).await?;
        if let Some(errors) = result.get("errors").filter(|e| !e.is_null()) {
            return Err(backend(errors));
        }
        let found = result.pointer(&format!("/data/Get/{}/0", self.class));
        Ok(found.and_then(|hit| {
            let answer = parse_key(hit.get("answer")?.as_str()?)?;
            let distance = hit.pointer("/_additional/distance")?.as_f64()?;
            Some(Neighbour { answer, text: hit.get("text")?.as_str()?.to_owned(), score: 1.0 - distance as f32 })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_checked_and_capitalised() {
        assert_eq!(class_name("cherrypick_semantic").unwrap(), "Cherrypick_semantic");
        assert!(class_name("9lives").is_err());
        assert!(class_name("a b").is_err());
        assert!(class_name("").is_err());
    }
}
