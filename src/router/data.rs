//! The routing data format (JSON lines), shared by training, sweep and evaluation:
//! `{"id", "prompt", "quality": {model: score in [0,1]}, "cost_usd": {model: usd}}` with optional
//! `"task"`, `"latency_ms": {model: ms}` and `"output_tokens": {model: n}`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Line { path: PathBuf, line: usize, message: String },
    #[error("{0}: no examples")]
    Empty(PathBuf),
}

/// One prompt and, when labelled, each model's outcome on it.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub id: String,
    pub prompt: String,
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub quality: BTreeMap<String, f64>,
    #[serde(default)]
    pub cost_usd: BTreeMap<String, f64>,
    #[serde(default)]
    pub latency_ms: BTreeMap<String, f64>,
    #[serde(default)]
    pub output_tokens: BTreeMap<String, f64>,
}

impl Example {
    /// Whether this example has a quality and a cost for every one of `models`.
    pub fn labels_all(&self, models: &[String]) -> bool {
        models.iter().all(|m| self.quality.contains_key(m) && self.cost_usd.contains_key(m))
    }
}

/// Reads a JSON-lines file; blank lines are skipped, anything else that does not parse is an error
/// naming the line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Example>, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    let mut examples = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| DataError::Io { path: path.into(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let example: Example = serde_json::from_str(&line).map_err(|e| DataError::Line {
            path: path.into(),
            line: index + 1,
            message: e.to_string(),
        })?;
        if let Some((model, q)) = example.quality.iter().find(|(_, q)| !(0.0..=1.0).contains(*q)) {
            return Err(DataError::Line {
                path: path.into(),
                line: index + 1,
                message: format!("quality of {model} is {q}, outside [0, 1]"),
            });
        }
        examples.push(example);
    }
    if examples.is_empty() {
        return Err(DataError::Empty(path.into()));
    }
    Ok(examples)
}

/// Reads several files into one list.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Example>, DataError> {
    let mut all = Vec::new();
    for path in paths {
        all.extend(read_jsonl(path)?);
    }
    Ok(all)
}

/// Every model named in a quality map, sorted.
pub fn models_in(examples: &[Example]) -> Vec<String> {
    let mut models: Vec<String> = examples.iter().flat_map(|e| e.quality.keys().cloned()).collect();
    models.sort();
    models.dedup();
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labelled_and_unlabelled_lines() {
        let dir = std::env::temp_dir().join(format!("cherrypick-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"prompt\":\"hi\",\"quality\":{\"m1\":1,\"m2\":0},\"cost_usd\":{\"m1\":0.1,\"m2\":0.01}}\n\n\
             {\"id\":\"b\",\"prompt\":\"yo\"}\n",
        )
        .unwrap();
        let examples = read_jsonl(&path).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(models_in(&examples), ["m1", "m2"]);
        assert!(examples[0].labels_all(&["m1".into(), "m2".into()]));
        assert!(!examples[1].labels_all(&["m1".into()]));

        std::fs::write(&path, "{\"id\":\"a\",\"prompt\":\"hi\",\"quality\":{\"m1\":2}}\n").unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains(":1: quality of m1 is 2"), "{err}");
        std::fs::write(&path, "{\"id\":\"a\"}\n").unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains("missing field `prompt`"), "{err}");
    }
}
