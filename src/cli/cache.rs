//! `cherrypick cache eval`: how often the semantic cache answers a reworded question correctly,
//! and how often it answers a different one, on labelled question pairs.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::router::{EncoderArgs, embeddings};
use crate::config::{DEFAULT_ENCODER, SemanticConfig};
use crate::memory::Key;
use crate::memory::vector::Point;
use crate::memory::vector::embedded::{Embedded, Options};
use crate::memory::verify::{FEATURE_NAMES, Verdict, Verifier, features};

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Insert every `text_a` into a fresh semantic cache, look up every `text_b`, and report hit
    /// and false-hit rates (JSON lines on stdout, a table on stderr).
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Tab-separated pairs with the header `pair_id, text_a, text_b, label` (1: same question).
    #[arg(long)]
    pairs: PathBuf,
    /// Cosine a candidate needs; default: the gateway's (`cache.semantic.threshold`).
    #[arg(long)]
    threshold: Option<f32>,
    /// Bare cosine: no verifier (what other gateways do).
    #[arg(long)]
    no_verify: bool,
    /// Also write each lookup's verifier features here (TSV), to fit the verifier.
    #[arg(long)]
    features: Option<PathBuf>,
    #[command(flatten)]
    encoder: EncoderArgs,
}

pub fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Eval(args) => eval(&args),
    }
}

struct Pair {
    id: String,
    text_a: String,
    text_b: String,
    same: bool,
}

fn read_pairs(path: &Path) -> anyhow::Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.split('\t').collect::<Vec<_>>() == ["pair_id", "text_a", "text_b", "label"] => {}
        _ => bail!("{}: the first line must be the header `pair_id<TAB>text_a<TAB>text_b<TAB>label`", path.display()),
    }
    let mut pairs = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, a, b, label] = fields[..] else {
            bail!("{}:{}: expected 4 tab-separated fields, found {}", path.display(), n + 1, fields.len());
        };
        let same = match label.trim() {
            "1" => true,
            "0" => false,
            other => bail!("{}:{}: label must be 0 or 1, not `{other}`", path.display(), n + 1),
        };
        pairs.push(Pair { id: id.to_owned(), text_a: a.to_owned(), text_b: b.to_owned(), same });
    }
    if pairs.is_empty() {
        bail!("{}: no pairs", path.display());
    }
    Ok(pairs)
}

/// One lookup: the nearest stored question (its index among distinct `text_a`), with its cosine
/// and what the verifier's word checks say of it (at any threshold).
struct Lookup {
    entry: Option<usize>,
    score: f32,
    /// The verifier's veto, if the candidate's numbers or negation differ.
    veto: Option<Verdict>,
    /// The stored question is the asked one, word for word (case and spacing aside): answering
    /// it is right whatever the pair's label says.
    identical: bool,
}

fn normalised(text: &str) -> String {
    text.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

#[derive(Default)]
struct Tally {
    lookups: usize,
    duplicates: usize,
    right_hits: usize,
    /// Right hits on a stored question identical to the asked one (another pair's `text_a`).
    identical_hits: usize,
    false_hits: usize,
}

impl Tally {
    fn hit_rate(&self) -> f64 {
        self.right_hits as f64 / self.duplicates.max(1) as f64
    }
    fn false_rate(&self) -> f64 {
        self.false_hits as f64 / self.lookups.max(1) as f64
    }
    fn precision(&self) -> f64 {
        let right = self.right_hits + self.identical_hits;
        right as f64 / (right + self.false_hits).max(1) as f64
    }
    fn json(&self) -> serde_json::Value {
        json!({"lookups": self.lookups, "duplicates": self.duplicates, "hit_rate": self.hit_rate(),
               "false_hit_rate": self.false_rate(), "precision": self.precision(),
               "hits": self.right_hits + self.false_hits, "identical_hits": self.identical_hits,
               "strict_false_hit_rate": (self.false_hits + self.identical_hits) as f64 / self.lookups.max(1) as f64})
    }
}

fn tally(pairs: &[Pair], entry_of_a: &[usize], lookups: &[Lookup], accept: impl Fn(&Lookup) -> bool) -> Tally {
    let mut t = Tally { lookups: pairs.len(), duplicates: pairs.iter().filter(|p| p.same).count(), ..Tally::default() };
    for ((pair, own), lookup) in pairs.iter().zip(entry_of_a).zip(lookups) {
        let Some(entry) = lookup.entry.filter(|_| accept(lookup)) else { continue };
        if pair.same && entry == *own {
            t.right_hits += 1;
        } else if lookup.identical {
            t.identical_hits += 1;
        } else {
            t.false_hits += 1;
        }
    }
    t
}

fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let defaults = SemanticConfig::default();
    let threshold = args.threshold.unwrap_or(defaults.threshold);
    let verify = !args.no_verify;
    let pairs = read_pairs(&args.pairs)?;

    // The cache holds one entry per distinct question: pairs that share a `text_a` share an entry.
    let mut entries: Vec<&str> = Vec::new();
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    let entry_of_a: Vec<usize> = pairs
        .iter()
        .map(|p| {
            *index_of.entry(p.text_a.as_str()).or_insert_with(|| {
                entries.push(&p.text_a);
                entries.len() - 1
            })
        })
        .collect();
    let (encoder, _, key) = args.encoder.load(DEFAULT_ENCODER)?;
    let dim = encoder.dim();
    let stored = embeddings(&encoder, &key, args.encoder.max_tokens, &entries)?;
    let asked_texts: Vec<&str> = pairs.iter().map(|p| p.text_b.as_str()).collect();
    let asked = embeddings(&encoder, &key, args.encoder.max_tokens, &asked_texts)?;

    let index = Embedded::in_memory(Options {
        dimensions: dim,
        exact_limit: defaults.exact_search_limit,
        ..Options::default()
    });
    let partition = Key([0; 32]);
    let started = std::time::Instant::now();
    for (i, text) in entries.iter().enumerate() {
        let mut answer = [0u8; 32];
        answer[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let vector: Arc<[f32]> = stored[i * dim..(i + 1) * dim].into();
        index.insert_local(Point {
            partition,
            answer: Key(answer),
            vector,
            text: (*text).to_owned(),
            expires: i64::MAX,
        })?;
    }
    let inserted = started.elapsed();
    let started = std::time::Instant::now();
    let lookups: Vec<(Lookup, Option<crate::memory::verify::Features>)> = pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| match index.nearest_local(&partition, &asked[i * dim..(i + 1) * dim]) {
            Some(n) => {
                let f = features(&pair.text_b, &n.text, n.score);
                let identical = normalised(&pair.text_b) == normalised(&n.text);
                let entry = Some(n.answer.short() as usize);
                // Judged at threshold 0 so one pass serves every threshold of the sweep.
                let veto = Some(Verifier::new(0.0).verdict(&pair.text_b, &n.text, n.score))
                    .filter(|v| *v != Verdict::Accepted);
                let lookup = Lookup { entry, score: n.score, veto, identical };
                (lookup, Some(f))
            }
            None => (Lookup { entry: None, score: 0.0, veto: None, identical: false }, None),
        })
        .collect();
    let searched = started.elapsed();
    let (lookups, feats): (Vec<Lookup>, Vec<_>) = lookups.into_iter().unzip();

    if let Some(path) = &args.features {
        let mut out =
            BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?);
        writeln!(out, "pair_id\tlabel\tright_entry\tidentical\t{}", FEATURE_NAMES.join("\t"))?;
        for (i, pair) in pairs.iter().enumerate() {
            let (Some(f), Some(entry)) = (&feats[i], lookups[i].entry) else { continue };
            let values: Vec<String> = f.as_array().iter().map(|v| format!("{v:.5}")).collect();
            let right_entry = u8::from(entry == entry_of_a[i]);
            let identical = u8::from(lookups[i].identical);
            writeln!(out, "{}\t{}\t{right_entry}\t{identical}\t{}", pair.id, u8::from(pair.same), values.join("\t"))?;
        }
    }

    let accepts =
        |threshold: f32, verify: bool| move |l: &Lookup| l.score >= threshold && (!verify || l.veto.is_none());
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    // Every pair a stored question answers: its own pair if the question is a pair's text_a.
    let pair_of_entry: Vec<&str> = {
        let mut first = vec![""; entries.len()];
        for (pair, &entry) in pairs.iter().zip(&entry_of_a).rev() {
            first[entry] = &pair.id;
        }
        first
    };
    let accept = accepts(threshold, verify);
    for ((pair, lookup), own) in pairs.iter().zip(&lookups).zip(&entry_of_a) {
        let hit = lookup
            .entry
            .filter(|_| accept(lookup))
            .map(|e| if e == *own { pair.id.as_str() } else { pair_of_entry[e] });
        let verdict = match (lookup.score >= threshold, lookup.veto) {
            (false, _) => Verdict::BelowThreshold,
            (true, Some(veto)) if verify => veto,
            (true, _) => Verdict::Accepted,
        };
        let verdict = format!("{verdict:?}");
        writeln!(
            stdout,
            "{}",
            json!({"pair_id": pair.id, "hit_pair_id": hit, "score": lookup.score, "verdict": verdict})
        )?;
    }
    let chosen = tally(&pairs, &entry_of_a, &lookups, accept);
    eprintln!(
        "{} pairs, {} distinct stored questions: inserted in {:.2?}, {} lookups in {:.2?}",
        pairs.len(),
        entries.len(),
        inserted,
        pairs.len(),
        searched
    );
    eprintln!(
        "{:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "threshold", "verifier", "hit rate", "false hits", "precision", "identical"
    );
    let row = |t: f32, verifier: &str, tally: &Tally| {
        eprintln!(
            "{t:>9.4} {verifier:>9} {:>8.1}% {:>9.2}% {:>9.1}% {:>9.2}%",
            100.0 * tally.hit_rate(),
            100.0 * tally.false_rate(),
            100.0 * tally.precision(),
            100.0 * tally.identical_hits as f64 / tally.lookups.max(1) as f64
        );
    };
    let mut sweep = Vec::new();
    let mut thresholds: Vec<f32> = (0..=25).map(|s| 0.70 + 0.01 * s as f32).collect();
    thresholds.extend((0..=12).map(|s| 0.96 + 0.0025 * s as f32));
    for t in thresholds {
        let bare = tally(&pairs, &entry_of_a, &lookups, accepts(t, false));
        let verified = tally(&pairs, &entry_of_a, &lookups, accepts(t, true));
        row(t, "off", &bare);
        if !args.no_verify {
            row(t, "on", &verified);
        }
        sweep
            .push(json!({"threshold": t, "bare": bare.json(), "verified": (!args.no_verify).then(|| verified.json())}));
    }
    eprintln!("chosen: threshold {threshold:.3}, verifier {}", if verify { "on" } else { "off" });
    row(threshold, if args.no_verify { "off" } else { "on" }, &chosen);
    let summary = json!({"threshold": threshold, "verify": verify,
        "distinct_stored": entries.len(), "insert_seconds": inserted.as_secs_f64(), "search_seconds": searched.as_secs_f64(),
        "result": chosen.json()});
    writeln!(stdout, "{}", json!({"summary": summary}))?;
    writeln!(stdout, "{}", json!({"sweep": sweep}))?;
    Ok(ExitCode::SUCCESS)
}
