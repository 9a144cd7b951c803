//! One behavioural suite for every vector store: the embedded index always, Qdrant when
//! `QDRANT_URL` is set (gRPC, e.g. http://127.0.0.1:6334), Weaviate when `WEAVIATE_URL` is set
//! (e.g. http://127.0.0.1:8081). `docker compose -f docker/compose.vector.yaml up -d` starts both.

use std::sync::Arc;
use std::time::Duration;

use cherrypick::memory::Key;
use cherrypick::memory::sql::unix_now;
use cherrypick::memory::vector::embedded::{Embedded, Options};
use cherrypick::memory::vector::qdrant::QdrantStore;
use cherrypick::memory::vector::weaviate::WeaviateStore;
use cherrypick::memory::vector::{Point, VectorStore};

const DIMS: usize = 8;

fn unit(values: [f32; DIMS]) -> Arc<[f32]> {
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
    values.iter().map(|x| x / norm).collect()
}

fn axis(i: usize) -> Arc<[f32]> {
    let mut v = [0.05; DIMS];
    v[i] = 1.0;
    unit(v)
}

fn key(seed: u8, run: &[u8; 16]) -> Key {
    let mut k = [seed; 32];
    k[..16].copy_from_slice(run);
    k[16] = seed;
    Key(k)
}

fn point(partition: Key, answer: Key, vector: Arc<[f32]>, text: &str, expires: i64) -> Point {
    Point { partition, answer, vector, text: text.into(), expires }
}

/// What every backend must do; `run` keeps concurrent runs against one server apart.
async fn behaves(store: Arc<dyn VectorStore>) {
    let run = *uuid::Uuid::new_v4().as_bytes();
    let (a, b) = (key(1, &run), key(2, &run));
    let later = unix_now() + 3600;
    assert!(store.nearest(&a, &axis(0)).await.unwrap().is_none(), "{}: an empty partition", store.name());

    store.insert(point(a, key(10, &run), axis(0), "first", later)).await.unwrap();
    store.insert(point(a, key(11, &run), axis(1), "second", later)).await.unwrap();
    store.insert(point(a, key(12, &run), axis(2), "expired", unix_now() - 10)).await.unwrap();
    store.insert(point(b, key(20, &run), axis(2), "other partition", later)).await.unwrap();

    let found = store.nearest(&a, &axis(1)).await.unwrap().expect("a neighbour");
    assert_eq!((found.text.as_str(), found.answer), ("second", key(11, &run)), "{}", store.name());
    assert!((found.score - 1.0).abs() < 0.01, "{}: score {}", store.name(), found.score);

    let near_expired = store.nearest(&a, &axis(2)).await.unwrap().expect("a live neighbour");
    assert_ne!(near_expired.text, "expired", "{}: expired points are never returned", store.name());
    assert!(near_expired.score < 0.5, "{}: score {}", store.name(), near_expired.score);

    let other = store.nearest(&b, &axis(0)).await.unwrap().expect("b's own point");
    assert_eq!(other.text, "other partition", "{}: never a point of another partition", store.name());

    // Storing the same question again keeps one answer for it.
    store.insert(point(a, key(10, &run), axis(0), "first", later)).await.unwrap();
    let again = store.nearest(&a, &axis(0)).await.unwrap().unwrap();
    assert_eq!((again.text.as_str(), again.answer), ("first", key(10, &run)));
}

#[tokio::test]
async fn the_embedded_index_behaves() {
    let dir = std::env::temp_dir().join(format!("cherrypick-vs-{}", uuid::Uuid::new_v4().simple()));
    let store =
        Embedded::open(&dir, Options { dimensions: DIMS, exact_limit: 2, expansion_search: 64, ..Options::default() })
            .unwrap();
    tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.wait_loaded()
    })
    .await
    .unwrap()
    .unwrap();
    behaves(store).await;
}

#[tokio::test]
async fn qdrant_behaves_when_a_server_is_given() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("skipped: set QDRANT_URL (docker compose -f docker/compose.vector.yaml up -d)");
        return;
    };
    let collection = format!("cherrypick_test_{}", uuid::Uuid::new_v4().simple());
    let store = QdrantStore::connect(&url, None, &collection, DIMS, Duration::from_secs(5)).unwrap();
    behaves(Arc::new(store)).await;
}

#[tokio::test]
async fn weaviate_behaves_when_a_server_is_given() {
    let Ok(url) = std::env::var("WEAVIATE_URL") else {
        eprintln!("skipped: set WEAVIATE_URL (docker compose -f docker/compose.vector.yaml up -d)");
        return;
    };
    let collection = format!("CherrypickTest{}", uuid::Uuid::new_v4().simple());
    let store = WeaviateStore::connect(&url, None, &collection, Duration::from_secs(5)).unwrap();
    behaves(Arc::new(store)).await;
}
