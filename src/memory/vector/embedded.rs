//! The embedded vector index: no server, persisted to disk, survives a restart.
//!
//! Points live in partitions (tenant × target × parameters × conversation so far). A partition
//! starts as a flat list searched exactly, which is both faster and exact while it is small;
//! past `exact_limit` points it becomes a usearch HNSW graph (i8 vectors), sub-millisecond at a
//! million points (BENCHMARKS.md). Every insert is appended to a log (a writer thread, never a tokio worker) that
//! is replayed at start; a torn last record from a crash is ignored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use async_trait::async_trait;
use half::f16;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::{Neighbour, Point, VectorStore};
use crate::memory::sql::unix_now;
use crate::memory::{Key, MemoryError};

struct Meta {
    answer: Key,
    text: Box<str>,
    expires: i64,
}

enum Shard {
    Flat {
        vectors: Vec<f32>,
        meta: Vec<Meta>,
    },
    /// `ids` finds a point by its answer, so storing a question again replaces it.
    Graph {
        index: Index,
        meta: HashMap<u64, Meta>,
        ids: HashMap<Key, u64>,
        next_id: u64,
    },
}

/// Candidates the graph returns, so an expired nearest point does not hide a live one behind it.
const GRAPH_CANDIDATES: usize = 4;

pub struct Options {
    pub dimensions: usize,
    pub exact_limit: usize,
    /// HNSW search breadth: higher finds the true nearest more often, slower.
    pub expansion_search: usize,
    /// HNSW build breadth: higher builds a better graph, slower.
    pub expansion_add: usize,
    /// HNSW links per point: more find the nearest more often in tight clusters, more memory.
    pub connectivity: usize,
    /// How the graph stores vectors.
    pub quantization: ScalarKind,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dimensions: 384,
            exact_limit: 4096,
            expansion_search: 128,
            // Measured at 1M points in tight clusters (BENCHMARKS.md): 16 links and a build breadth
            // of 64 found the true nearest 89% of the time at this search breadth; 32 and 96, 99.5%.
            expansion_add: 96,
            connectivity: 32,
            // i8 over unit vectors: a quarter of f32's memory, and the fastest search measured here.
            quantization: ScalarKind::I8,
        }
    }
}

pub struct Embedded {
    options: Options,
    shards: RwLock<HashMap<Key, Shard>>,
    log: Option<Mutex<Sender<Vec<u8>>>>,
    loaded: OnceLock<Result<usize, String>>,
}

impl Embedded {
    /// An index kept only in memory (the eval command, tests).
    pub fn in_memory(options: Options) -> Arc<Self> {
        let index = Arc::new(Self { options, shards: RwLock::default(), log: None, loaded: OnceLock::new() });
        let _ = index.loaded.set(Ok(0));
        index
    }

    /// Opens (or creates) the index under `dir`; the log is replayed on a blocking thread, and
    /// lookups miss until it has been.
    pub fn open(dir: &Path, options: Options) -> Result<Arc<Self>, MemoryError> {
        std::fs::create_dir_all(dir).map_err(|e| MemoryError::Config(format!("{}: {e}", dir.display())))?;
        let path = dir.join("semantic.log");
        let (sender, receiver) = channel();
        let index = Arc::new(Self {
            options,
            shards: RwLock::default(),
            log: Some(Mutex::new(sender)),
            loaded: OnceLock::new(),
        });
        let loader = index.clone();
        std::thread::Builder::new()
            .name("cherrypick-vectors".into())
            .spawn(move || {
                let replayed = loader.replay(&path);
                if let Err(error) = &replayed {
                    tracing::error!(%error, "semantic index: could not replay its log; starting empty");
                }
                let ok = replayed.is_ok();
                let _ = loader.loaded.set(replayed.map_err(|e| e.to_string()));
                if ok {
                    append_forever(&path, receiver);
                }
            })
            .map_err(|e| MemoryError::Backend(e.to_string()))?;
        Ok(index)
    }

    /// Blocks until the log has been replayed; the number of live points read.
    pub fn wait_loaded(&self) -> Result<usize, String> {
        loop {
            if let Some(result) = self.loaded.get() {
                return result.clone();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn replay(&self, path: &Path) -> Result<usize, MemoryError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(MemoryError::Backend(format!("{}: {e}", path.display()))),
        };
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let now = unix_now();
        let mut live = 0;
        let mut record = Vec::new();
        loop {
            let mut len = [0u8; 4];
            if reader.read_exact(&mut len).is_err() {
                break;
            }
            record.resize(u32::from_le_bytes(len) as usize, 0);
            if reader.read_exact(&mut record).is_err() {
                tracing::warn!("semantic index: ignoring a torn last record");
                break;
            }
            match decode_point(&record, self.options.dimensions) {
                Some(point) if point.expires > now => {
                    self.insert_local(point)?;
                    live += 1;
                }
                Some(_) => {}
                None => {
                    tracing::warn!("semantic index: stopping at a corrupt record");
                    break;
                }
            }
        }
        Ok(live)
    }

    /// Adds a point to its shard, turning a flat shard into a graph when it outgrows exact search.
    pub fn insert_local(&self, point: Point) -> Result<(), MemoryError> {
        if point.vector.len() != self.options.dimensions {
            return Err(MemoryError::Config(format!(
                "a {}-dimensional vector for a {}-dimensional index",
                point.vector.len(),
                self.options.dimensions
            )));
        }
        let meta = Meta { answer: point.answer, text: point.text.into(), expires: point.expires };
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        let shard =
            shards.entry(point.partition).or_insert_with(|| Shard::Flat { vectors: Vec::new(), meta: Vec::new() });
        match shard {
            Shard::Flat { vectors, meta: metas } => {
                let dims = self.options.dimensions;
                if let Some(i) = metas.iter().position(|m| m.answer == meta.answer) {
                    vectors[i * dims..(i + 1) * dims].copy_from_slice(&point.vector);
                    metas[i] = meta;
                    return Ok(());
                }
                vectors.extend_from_slice(&point.vector);
                metas.push(meta);
                if metas.len() > self.options.exact_limit {
                    *shard = self.to_graph(std::mem::take(vectors), std::mem::take(metas))?;
                }
            }
            Shard::Graph { index, meta: metas, ids, next_id } => {
                if let Some(old) = ids.remove(&meta.answer) {
                    index.remove(old).map_err(graph_error)?;
                    metas.remove(&old);
                }
                let id = *next_id;
                *next_id += 1;
                if index.size() >= index.capacity() {
                    index.reserve((index.capacity() * 2).max(1024)).map_err(graph_error)?;
                }
                index.add(id, &point.vector).map_err(graph_error)?;
                ids.insert(meta.answer, id);
                metas.insert(id, meta);
            }
        }
        Ok(())
    }

    fn to_graph(&self, vectors: Vec<f32>, metas: Vec<Meta>) -> Result<Shard, MemoryError> {
        let options = IndexOptions {
            dimensions: self.options.dimensions,
            // Cos, not IP: with i8 vectors usearch's inner product is in quantised units, and the
            // score must be a true cosine to compare against the threshold.
            metric: MetricKind::Cos,
            quantization: self.options.quantization,
            connectivity: self.options.connectivity,
            expansion_add: self.options.expansion_add,
            expansion_search: self.options.expansion_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(graph_error)?;
        index.reserve((metas.len() * 2).max(1024)).map_err(graph_error)?;
        for (id, vector) in vectors.chunks_exact(self.options.dimensions).enumerate() {
            index.add(id as u64, vector).map_err(graph_error)?;
        }
        let ids = metas.iter().enumerate().map(|(i, m)| (m.answer, i as u64)).collect();
        let next_id = metas.len() as u64;
        let meta = metas.into_iter().enumerate().map(|(i, m)| (i as u64, m)).collect();
        Ok(Shard::Graph { index, meta, ids, next_id })
    }

    /// The nearest live point of `partition`, searched in place (sub-millisecond: no thread hop).
    pub fn nearest_local(&self, partition: &Key, vector: &[f32]) -> Option<Neighbour> {
        let now = unix_now();
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        let neighbour = |meta: &Meta, score: f32| Neighbour { answer: meta.answer, text: meta.text.to_string(), score };
        match shards.get(partition)? {
            Shard::Flat { vectors, meta } => {
                let mut best: Option<(usize, f32)> = None;
                for (i, row) in vectors.chunks_exact(self.options.dimensions).enumerate() {
                    if meta[i].expires <= now {
                        continue;
                    }
                    let score = dot(row, vector);
                    if best.is_none_or(|(_, s)| score > s) {
                        best = Some((i, score));
                    }
                }
                best.map(|(i, score)| neighbour(&meta[i], score))
            }
            Shard::Graph { index, meta, .. } => {
                let found = index.search(vector, GRAPH_CANDIDATES).ok()?;
                found.keys.iter().zip(&found.distances).find_map(|(id, distance)| {
                    let m = meta.get(id).filter(|m| m.expires > now)?;
                    Some(neighbour(m, 1.0 - distance))
                })
            }
        }
    }

    /// Changes the search breadth of every graph (benchmarks sweep it over one build).
    pub fn set_expansion_search(&self, expansion: usize) {
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        for shard in shards.values() {
            if let Shard::Graph { index, .. } = shard {
                index.change_expansion_search(expansion);
            }
        }
    }

    /// Approximate bytes and points held.
    pub fn footprint(&self) -> (u64, u64) {
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        let mut bytes = 0usize;
        let mut points = 0usize;
        for shard in shards.values() {
            match shard {
                Shard::Flat { vectors, meta } => {
                    bytes +=
                        vectors.capacity() * 4 + meta.iter().map(|m| size_of::<Meta>() + m.text.len()).sum::<usize>();
                    points += meta.len();
                }
                Shard::Graph { index, meta, .. } => {
                    // Per point: its metadata entry and text, and its answer → id entry.
                    let per_point = size_of::<(u64, Meta)>() + size_of::<(Key, u64)>() + 16;
                    bytes += index.memory_usage() + meta.values().map(|m| per_point + m.text.len()).sum::<usize>();
                    points += meta.len();
                }
            }
        }
        (bytes as u64, points as u64)
    }
}

fn graph_error(error: impl std::fmt::Display) -> MemoryError {
    MemoryError::Backend(format!("usearch: {error}"))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums: the compiler vectorises this; one running sum it cannot.
    let mut sums = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

fn encode_point(point: &Point) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 72 + point.vector.len() * 2 + point.text.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&point.partition.0);
    out.extend_from_slice(&point.answer.0);
    out.extend_from_slice(&point.expires.to_le_bytes());
    for x in point.vector.iter() {
        out.extend_from_slice(&f16::from_f32(*x).to_le_bytes());
    }
    out.extend_from_slice(point.text.as_bytes());
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

fn decode_point(record: &[u8], dimensions: usize) -> Option<Point> {
    let fixed = 32 + 32 + 8 + dimensions * 2;
    if record.len() < fixed {
        return None;
    }
    let partition = Key(record[..32].try_into().ok()?);
    let answer = Key(record[32..64].try_into().ok()?);
    let expires = i64::from_le_bytes(record[64..72].try_into().ok()?);
    let vector: Arc<[f32]> =
        record[72..fixed].chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
    let text = std::str::from_utf8(&record[fixed..]).ok()?.to_owned();
    Some(Point { partition, answer, vector, text, expires })
}

/// The log writer: appends what arrives, flushing whenever the queue runs dry.
fn append_forever(path: &PathBuf, records: Receiver<Vec<u8>>) {
    let file = match OpenOptions::new().create(true).append(true).open(path) {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "semantic index: cannot open its log; inserts stay in memory");
            return;
        }
    };
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    while let Ok(record) = records.recv() {
        let mut result = writer.write_all(&record);
        while let (Ok(()), Ok(record)) = (&result, records.try_recv()) {
            result = writer.write_all(&record);
        }
        if let Err(error) = result.and_then(|()| writer.flush()) {
            tracing::error!(%error, "semantic index: log write failed");
        }
    }
    let _ = writer.flush();
}

#[async_trait]
impl VectorStore for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn insert(&self, point: Point) -> Result<(), MemoryError> {
        if self.loaded.get().is_none() {
            return Err(MemoryError::Loading);
        }
        let record = self.log.as_ref().map(|_| encode_point(&point));
        self.insert_local(point)?;
        if let (Some(log), Some(record)) = (&self.log, record) {
            let sent = log.lock().unwrap_or_else(|e| e.into_inner()).send(record);
            sent.map_err(|_| MemoryError::Backend("the semantic index's log writer stopped".into()))?;
        }
        Ok(())
    }

    async fn nearest(&self, partition: &Key, vector: &[f32]) -> Result<Option<Neighbour>, MemoryError> {
        match self.loaded.get() {
            None => Err(MemoryError::Loading),
            Some(_) => Ok(self.nearest_local(partition, vector)),
        }
    }

    fn state(&self) -> String {
        match self.loaded.get() {
            None => "loading".into(),
            Some(Ok(_)) => "up".into(),
            Some(Err(e)) => format!("started empty: {e}"),
        }
    }

    fn usage(&self) -> Option<(u64, u64)> {
        Some(self.footprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Arc<[f32]> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..dims)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    fn point(partition: u8, n: u64, dims: usize) -> Point {
        Point {
            partition: Key([partition; 32]),
            answer: Key([n as u8; 32]),
            vector: unit(n, dims),
            text: format!("question {n}"),
            expires: unix_now() + 3600,
        }
    }

    #[test]
    fn flat_and_graph_shards_find_the_nearest_point_of_their_own_partition_only() {
        let dims = 16;
        let index = Embedded::in_memory(Options {
            dimensions: dims,
            exact_limit: 8,
            expansion_search: 64,
            ..Options::default()
        });
        for n in 0..40 {
            index.insert_local(point(1, n, dims)).unwrap();
        }
        index.insert_local(point(2, 1000, dims)).unwrap();
        for n in [0, 7, 20, 39] {
            let found = index.nearest_local(&Key([1; 32]), &unit(n, dims)).unwrap();
            assert_eq!(found.text, format!("question {n}"));
            assert!((found.score - 1.0).abs() < 1e-2, "score {}", found.score);
        }
        let other = index.nearest_local(&Key([2; 32]), &unit(3, dims)).unwrap();
        assert_eq!(other.text, "question 1000", "never a point of another partition");
        assert!(index.nearest_local(&Key([3; 32]), &unit(3, dims)).is_none());
    }

    #[test]
    fn expired_points_are_never_returned() {
        let index = Embedded::in_memory(Options { dimensions: 8, ..Options::default() });
        let mut old = point(1, 1, 8);
        old.expires = unix_now() - 1;
        index.insert_local(old).unwrap();
        assert!(index.nearest_local(&Key([1; 32]), &unit(1, 8)).is_none());
    }

    #[test]
    fn the_log_survives_a_restart_and_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("cherrypick-vectors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = || Options { dimensions: 16, exact_limit: 4, expansion_search: 64, ..Options::default() };
        {
            let index = Embedded::open(&dir, options()).unwrap();
            index.wait_loaded().unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for n in 0..10 {
                runtime.block_on(index.insert(point(1, n, 16))).unwrap();
            }
        }
        // Give the writer thread its moment to drain, then tear the last record.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let log = dir.join("semantic.log");
        let len = std::fs::metadata(&log).unwrap().len();
        OpenOptions::new().write(true).open(&log).unwrap().set_len(len - 5).unwrap();

        let index = Embedded::open(&dir, options()).unwrap();
        assert_eq!(index.wait_loaded().unwrap(), 9);
        let found = index.nearest_local(&Key([1; 32]), &unit(4, 16)).unwrap();
        assert_eq!(found.text, "question 4");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
