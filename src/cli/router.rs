//! `cherrypick models pull` and `cherrypick router train | sweep | eval | crossval`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::config::DEFAULT_ENCODER;
use crate::router::data::{self, Example};
use crate::router::difficulty::{self, Difficulty};
use crate::router::encoder::Encoder;
use crate::router::evaluate::{self, Predictions};
use crate::router::selector::{self, Card, DataRef, ModelCard, Selector};
use crate::router::train::{self, Dataset, TrainOptions};
use crate::router::{STATIC_PREFIX, knn, source};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the router's encoder from the Hugging Face hub into its local cache.
    Pull {
        #[arg(long, default_value = DEFAULT_ENCODER)]
        encoder: String,
        #[arg(long, default_value = "main")]
        revision: String,
    },
    /// Distil the encoder into a static token-embedding table (the router's fast tier).
    Distill {
        #[arg(long, env = "CHERRYPICK_ENCODER", default_value = DEFAULT_ENCODER)]
        encoder: String,
        /// The table to write (safetensors, vocabulary × dimension f32).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RouterCommand {
    /// Write the gateway's logged requests that have feedback as routing data (JSON lines), for
    /// `router train`. Prompts are included only if they were logged (`request_log.log_prompts`).
    Export {
        /// The gateway's configuration (its `[store]`); the embedded default when not given.
        #[arg(long, short, env = "CHERRYPICK_CONFIG")]
        config: Option<PathBuf>,
        /// Only requests from this day on (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a selector from routing data (JSON lines) and write DIR/router.safetensors + router.json.
    Train {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        encoder: EncoderArgs,
        /// The encoder's hub id recorded in router.json when --encoder is a local folder.
        #[arg(long, default_value = DEFAULT_ENCODER)]
        encoder_name: String,
        #[command(flatten)]
        training: TrainArgs,
    },
    /// For each of N points on the cost dial, print the model chosen for each prompt (JSON lines).
    Sweep {
        #[command(flatten)]
        scored: ScoreArgs,
        #[arg(long, default_value_t = 11)]
        points: usize,
    },
    /// Score a trained router on labelled prompts (RouterBench AIQ; APGR/CPT for two candidates).
    Eval {
        #[command(flatten)]
        scored: ScoreArgs,
        #[arg(long, default_value_t = 41)]
        points: usize,
        /// Draw the cost-quality curves (router, single models, oracle) to this PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// k-fold cross-validation of training on labelled data: the MLP and a kNN baseline, each scored
    /// on the prompts it did not train on.
    Crossval {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        encoder: EncoderArgs,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Leave one task out instead: each fold is one `task` of the data, so every prompt is scored
        /// by a selector that never saw a prompt of its benchmark (out-of-domain routing).
        #[arg(long, conflicts_with = "folds")]
        by_task: bool,
        #[arg(long, default_value_t = 41)]
        points: usize,
        #[command(flatten)]
        training: TrainArgs,
    },
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    seed: u64,
    #[arg(long, default_value_t = TrainOptions::default().hidden)]
    hidden: usize,
    #[arg(long, default_value_t = TrainOptions::default().max_epochs)]
    max_epochs: usize,
    #[arg(long, default_value_t = TrainOptions::default().dropout)]
    dropout: f32,
    #[arg(long, default_value_t = TrainOptions::default().weight_decay)]
    weight_decay: f64,
    #[arg(long, default_value_t = TrainOptions::default().learning_rate)]
    learning_rate: f64,
    /// How far a prompt's predicted difficulty moves each model's predicted quality (0: off).
    #[arg(long, default_value_t = TrainOptions::default().difficulty_weight, value_parser = non_negative)]
    difficulty_weight: f32,
}

fn non_negative(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("`{text}` is not a number of 0 or more")),
    }
}

impl TrainArgs {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            seed: self.seed,
            hidden: self.hidden,
            max_epochs: self.max_epochs,
            dropout: self.dropout,
            weight_decay: self.weight_decay,
            learning_rate: self.learning_rate,
            difficulty_weight: self.difficulty_weight,
            ..TrainOptions::default()
        }
    }
}

/// A trained router and the prompts it scores.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[arg(long)]
    router: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    encoder: EncoderArgs,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// JSON-lines file(s) in the routing data format.
    #[arg(long = "data", required = true)]
    files: Vec<PathBuf>,
    /// Comma-separated model names; default: every model in the data (or the selector).
    #[arg(long, value_delimiter = ',')]
    candidates: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EncoderArgs {
    /// Encoder repo id or local folder; default: the selector's (or all-MiniLM-L6-v2 to train).
    #[arg(long, env = "CHERRYPICK_ENCODER")]
    encoder: Option<String>,
    /// Prompt tokens read.
    #[arg(long, default_value_t = 256)]
    pub(super) max_tokens: usize,
    /// Use the fast tier: this static table (from `cherrypick models distill`) instead of BERT.
    #[arg(long)]
    static_table: Option<PathBuf>,
}

impl EncoderArgs {
    /// The encoder named (`default` when --encoder is not given), its id for the card, and a key
    /// that identifies its embeddings.
    pub(super) fn load(&self, default: &str) -> anyhow::Result<(Encoder, String, String)> {
        let id = self.encoder.clone().unwrap_or_else(|| default.trim_start_matches(STATIC_PREFIX).to_owned());
        let files = block_on(source::fetch(&id, "main", true))?;
        Ok(match &self.static_table {
            Some(table) => {
                let encoder = Encoder::load_static(&files.tokenizer, table, self.max_tokens)?;
                (encoder, id, format!("{STATIC_PREFIX}{}", table.display()))
            }
            None => (Encoder::load(&files, self.max_tokens, &Device::Cpu)?, id.clone(), id),
        })
    }
}

pub fn models(command: ModelsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ModelsCommand::Pull { encoder, revision } => {
            let files = block_on(source::fetch(&encoder, &revision, true))?;
            println!("{encoder}: {}", files.weights.parent().unwrap_or(Path::new(".")).display());
        }
        ModelsCommand::Distill { encoder, out } => {
            let files = block_on(source::fetch(&encoder, "main", true))?;
            let bert = Encoder::load(&files, 8, &Device::Cpu)?;
            let progress = bar(bert.vocab_size(), "distilling");
            let table = bert.distill(256, |n| progress.inc(n as u64))?;
            progress.finish_and_clear();
            table.save(&out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(command: RouterCommand) -> anyhow::Result<ExitCode> {
    match command {
        RouterCommand::Export { config, since, out } => export_command(config.as_deref(), &since, &out),
        RouterCommand::Train { data, out, encoder, encoder_name, training } => {
            train_command(&data, &out, &encoder, &encoder_name, &training.options())
        }
        RouterCommand::Sweep { scored, points } => sweep_command(&scored, points),
        RouterCommand::Eval { scored, points, plot } => eval_command(&scored, points, plot.as_deref()),
        RouterCommand::Crossval { data, encoder, folds, by_task, points, training } => {
            let folds = if by_task { Folds::ByTask } else { Folds::Random(folds) };
            crossval_command(&data, &encoder, folds, points, &training.options())
        }
    }
}

pub(super) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Embeddings of every prompt, cached on disk by encoder, length limit and prompts (embedding
/// thousands of prompts takes minutes; evaluation runs again and again on the same ones).
pub(super) fn embeddings(
    encoder: &Encoder,
    encoder_id: &str,
    max_tokens: usize,
    texts: &[&str],
) -> anyhow::Result<Vec<f32>> {
    let mut hash = Sha256::new();
    hash.update(format!("{encoder_id}\0{max_tokens}\0"));
    for text in texts {
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    let key = format!("{:x}", hash.finalize());
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("cherrypick").join("embeddings"));
    let path = dir.as_ref().map(|d| d.join(format!("{key}.f32")));
    let want = texts.len() * encoder.dim();
    if let Some(bytes) = path.as_ref().and_then(|p| std::fs::read(p).ok())
        && bytes.len() == want * 4
    {
        return Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
    }
    let progress = bar(texts.len(), "embedding");
    let out = train::embed_all(encoder, texts, 16, |n| progress.inc(n as u64))?;
    progress.finish_and_clear();
    if let (Some(dir), Some(path)) = (dir, path) {
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        if std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, bytes)).is_err() {
            eprintln!("note: cannot cache embeddings in {}", dir.display());
        }
    }
    Ok(out)
}

fn prompts(examples: &[Example]) -> Vec<&str> {
    examples.iter().map(|e| e.prompt.as_str()).collect()
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The candidates asked for, or every model the data labels.
fn pick_models(examples: &[Example], asked: &[String]) -> anyhow::Result<Vec<String>> {
    let all = data::models_in(examples);
    if asked.is_empty() {
        return Ok(all);
    }
    if let Some(missing) = asked.iter().find(|m| !all.contains(m)) {
        bail!("candidate `{missing}` has no labels in the data (models: {})", all.join(", "));
    }
    Ok(asked.to_vec())
}

fn mean_of(examples: &[Example], field: impl Fn(&Example) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = examples.iter().filter_map(field).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn train_command(
    args: &DataArgs,
    out: &Path,
    enc: &EncoderArgs,
    encoder_name: &str,
    options: &TrainOptions,
) -> anyhow::Result<ExitCode> {
    // Each file is read once; the card records what came from which.
    let mut examples = Vec::new();
    let mut data_refs = Vec::new();
    for file in &args.files {
        let read = data::read_jsonl(file)?;
        data_refs.push(DataRef {
            file: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            sha256: file_sha256(file)?,
            examples: read.len(),
        });
        examples.extend(read);
    }
    let models = pick_models(&examples, &args.candidates)?;
    let (encoder, encoder_id, key) = enc.load(DEFAULT_ENCODER)?;
    let x = embeddings(&encoder, &key, enc.max_tokens, &prompts(&examples))?;
    let dataset = Dataset::new(&examples, x, encoder.dim(), models.clone());
    let (train_rows, validation_rows) = train::split(dataset.len(), options.validation_fraction, options.seed);

    let progress = bar(options.max_epochs, "training");
    let (mlp, vars, fit) = train::fit(&dataset, &train_rows, &validation_rows, options, &Device::Cpu, |_, _, v| {
        progress.inc(1);
        progress.set_message(format!("val {v:.4}"));
    })?;
    progress.finish_and_clear();
    // Fitted on every prompt: all of them are the selector's domain. The validation figures below
    // are the MLP's alone (the validation prompts are in the fit, so they would not be a test).
    let difficulty = fit_difficulty(&dataset, &examples, options)?;

    // Validation: per-model accuracy at 0.5 and the routing metrics on the held-out prompts.
    let predicted = train::predict(&mlp, &dataset, &validation_rows, &Device::Cpu)?;
    let held_out: Vec<Example> = validation_rows.iter().map(|&r| examples[r].clone()).collect();
    let mean_cost = mean_costs(&examples, &models);
    let report = routing_report(&held_out, &models, &predicted, &mean_cost, 41);

    let mut model_cards = Vec::new();
    println!("{:<40} {:>8} {:>10} {:>9} {:>9}", "model", "quality", "cost/req", "val acc", "val base");
    for (m, name) in models.iter().enumerate() {
        let mut correct = 0usize;
        let mut labelled = 0usize;
        let mut base = 0.0;
        for (k, e) in held_out.iter().enumerate() {
            if let Some(&q) = e.quality.get(name) {
                labelled += 1;
                base += q;
                correct += usize::from((predicted[k * models.len() + m] >= 0.5) == (q >= 0.5));
            }
        }
        let card = ModelCard {
            name: name.clone(),
            mean_quality: mean_of(&examples, |e| e.quality.get(name).copied()).unwrap_or(0.0),
            mean_cost_usd: mean_cost[m],
            mean_output_tokens: mean_of(&examples, |e| e.output_tokens.get(name).copied()),
            mean_latency_ms: mean_of(&examples, |e| e.latency_ms.get(name).copied()),
        };
        let acc = correct as f64 / labelled.max(1) as f64;
        let base = base / labelled.max(1) as f64;
        println!(
            "{:<40} {:>8.3} {:>10.6} {:>9.3} {:>9.3}",
            name,
            card.mean_quality,
            card.mean_cost_usd,
            acc,
            base.max(1.0 - base)
        );
        model_cards.push(card);
    }
    println!(
        "epochs {} (best {}), validation loss {:.4}; held-out AIQ {:.4} (single models {:.4}, oracle {:.4})",
        fit.epochs, fit.best_epoch, fit.validation_loss, report.aiq, report.zero_router_aiq, report.oracle_aiq
    );

    let card = Card {
        format: selector::CARD_FORMAT,
        encoder: {
            let name = if source::is_local(&encoder_id) { encoder_name.to_owned() } else { encoder_id };
            if encoder.is_static() { format!("{STATIC_PREFIX}{name}") } else { name }
        },
        embedding_dim: encoder.dim(),
        hidden: options.hidden,
        models: model_cards,
        data: data_refs,
        training: serde_json::json!({ "options": options, "max_tokens": enc.max_tokens, "fit": fit,
            "train_examples": train_rows.len(), "validation_examples": validation_rows.len() }),
        validation: serde_json::json!({ "loss": fit.validation_loss, "aiq": report.aiq,
            "zero_router_aiq": report.zero_router_aiq, "oracle_aiq": report.oracle_aiq,
            "cost_to_best_quality_ratio": report.cost_to_best_quality_ratio }),
        difficulty: difficulty.as_ref().map(Difficulty::card),
    };
    selector::save(out, &vars, difficulty.as_ref(), &card)?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// The difficulty adjustment over every example (none with a weight of 0).
fn fit_difficulty(
    dataset: &Dataset,
    examples: &[Example],
    options: &TrainOptions,
) -> anyhow::Result<Option<Difficulty>> {
    let rows: Vec<usize> = (0..dataset.len()).collect();
    fit_difficulty_on(dataset, &rows, &task_groups(examples), options)
}

fn fit_difficulty_on(
    dataset: &Dataset,
    rows: &[usize],
    groups: &[usize],
    options: &TrainOptions,
) -> anyhow::Result<Option<Difficulty>> {
    if options.difficulty_weight == 0.0 {
        return Ok(None);
    }

    Ok(Difficulty::fit(dataset, rows, groups, difficulty::DEFAULT_ALPHA, options.difficulty_weight, &Device::Cpu)?)
}

/// Each example's `task` as a small integer (examples without one share a group).
fn task_groups(examples: &[Example]) -> Vec<usize> {
    let mut names: Vec<Option<&str>> = Vec::new();
    examples
        .iter()
        .map(|e| {
            let task = e.task.as_deref();
            names.iter().position(|n| *n == task).unwrap_or_else(|| {
                names.push(task);
                names.len() - 1
            })
        })
        .collect()
}

/// Each model's mean cost per prompt in the data: the cost estimate the sweep uses.
fn mean_costs(examples: &[Example], models: &[String]) -> Vec<f64> {
    models.iter().map(|m| mean_of(examples, |e| e.cost_usd.get(m).copied()).unwrap_or(0.0)).collect()
}

fn routing_report(
    examples: &[Example],
    models: &[String],
    qualities: &[f32],
    cost: &[f64],
    points: usize,
) -> evaluate::Report {
    let labelled: Vec<usize> = (0..examples.len()).filter(|&i| examples[i].labels_all(models)).collect();
    let rows: Vec<Example> = labelled.iter().map(|&i| examples[i].clone()).collect();
    let width = models.len();
    let q: Vec<f32> = labelled.iter().flat_map(|&i| qualities[i * width..(i + 1) * width].iter().copied()).collect();
    let predictions = Predictions { models, qualities: &q };
    let all: Vec<usize> = (0..width).collect();
    let sweep = evaluate::sweep(&predictions, rows.len(), &all, cost, points);
    evaluate::report(&rows, models, &sweep)
}

/// The selector, its encoder, and the prompts' predicted qualities restricted to `candidates`.
struct Scored {
    selector: Selector,
    examples: Vec<Example>,
    candidates: Vec<String>,
    qualities: Vec<f32>,
    cost: Vec<f64>,
}

fn score(ScoreArgs { router, data: args, encoder: enc }: &ScoreArgs) -> anyhow::Result<Scored> {
    let selector = Selector::load(router, &Device::Cpu)?;
    let examples = data::read_all(&args.files)?;
    let heads: Vec<String> = selector.names().map(str::to_owned).collect();
    let candidates = if args.candidates.is_empty() { heads.clone() } else { args.candidates.clone() };
    let index: Vec<usize> = candidates
        .iter()
        .map(|c| heads.iter().position(|h| h == c).with_context(|| format!("the selector has no head `{c}`")))
        .collect::<anyhow::Result<_>>()?;
    let (encoder, _, key) = enc.load(&selector.card.encoder)?;
    crate::router::check_pair(&encoder, &selector)?;
    let x = embeddings(&encoder, &key, enc.max_tokens, &prompts(&examples))?;
    let all = selector.predict(&x, examples.len())?;
    let qualities: Vec<f32> = (0..examples.len())
        .flat_map(|row| index.iter().map(move |&h| (row, h)))
        .map(|(row, h)| all[row * heads.len() + h])
        .collect();
    let cost = index.iter().map(|&h| selector.card.models[h].mean_cost_usd).collect();
    Ok(Scored { selector, examples, candidates, qualities, cost })
}

fn sweep_command(args: &ScoreArgs, points: usize) -> anyhow::Result<ExitCode> {
    let s = score(args)?;
    let predictions = Predictions { models: &s.candidates, qualities: &s.qualities };
    let all: Vec<usize> = (0..s.candidates.len()).collect();
    let sweep = evaluate::sweep(&predictions, s.examples.len(), &all, &s.cost, points);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (knob, picks) in sweep.knobs.iter().zip(&sweep.choices) {
        for (e, &c) in s.examples.iter().zip(picks) {
            let line = serde_json::json!({"id": e.id, "knob": knob, "model": s.candidates[c]});
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    drop(s.selector);
    Ok(ExitCode::SUCCESS)
}

fn eval_command(args: &ScoreArgs, points: usize, plot: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = score(args)?;
    if !s.examples.iter().any(|e| e.labels_all(&s.candidates)) {
        bail!("no example labels every candidate ({})", s.candidates.join(", "));
    }
    let report = routing_report(&s.examples, &s.candidates, &s.qualities, &s.cost, points);
    if let Some(path) = plot {
        super::plot::cost_quality(&report, path)?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// How `router crossval` splits the data.
enum Folds {
    /// k folds of a seeded shuffle.
    Random(usize),
    /// One fold per `task`.
    ByTask,
}

/// Every row in a seeded order, the test rows of each fold (in that order), and each fold's name.
type FoldRows = (Vec<usize>, Vec<Vec<usize>>, Vec<String>);

fn fold_rows(examples: &[data::Example], folds: &Folds, seed: u64) -> anyhow::Result<FoldRows> {
    // `split` keeps at least one row apart, which must be tested too.
    let (mut shuffled, apart) = train::split(examples.len(), 0.0, seed);
    shuffled.extend(apart);
    match *folds {
        Folds::Random(k) => {
            if k < 2 {
                bail!("--folds must be at least 2");
            }
            let rows = (0..k).map(|f| shuffled.iter().copied().skip(f).step_by(k).collect()).collect();
            Ok((shuffled, rows, (1..=k).map(|f| f.to_string()).collect()))
        }
        Folds::ByTask => {
            let mut by_task: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for &row in &shuffled {
                let Some(task) = examples[row].task.as_deref() else {
                    bail!("--by-task: example `{}` has no `task`", examples[row].id);
                };
                by_task.entry(task).or_default().push(row);
            }
            if by_task.len() < 2 {
                bail!("--by-task needs at least two tasks in the data (found {})", by_task.len());
            }
            let (rows, names) = by_task.into_iter().map(|(task, rows)| (rows, task.to_string())).unzip();
            Ok((shuffled, rows, names))
        }
    }
}

fn crossval_command(
    args: &DataArgs,
    enc: &EncoderArgs,
    folds: Folds,
    points: usize,
    options: &TrainOptions,
) -> anyhow::Result<ExitCode> {
    let seed = options.seed;
    let examples = data::read_all(&args.files)?;
    let (shuffled, fold_tests, fold_names) = fold_rows(&examples, &folds, seed)?;
    let models = pick_models(&examples, &args.candidates)?;
    let (encoder, _, key) = enc.load(DEFAULT_ENCODER)?;
    let x = embeddings(&encoder, &key, enc.max_tokens, &prompts(&examples))?;
    let dataset = Dataset::new(&examples, x, encoder.dim(), models.clone());
    let width = models.len();
    let groups = task_groups(&examples);
    let mut mlp_q = vec![0f32; dataset.len() * width];
    let mut knn_q = vec![0f32; dataset.len() * width];
    let progress = bar(fold_tests.len(), "folds");
    for (fold, test) in fold_tests.iter().enumerate() {
        let in_test: std::collections::HashSet<usize> = test.iter().copied().collect();
        let rest: Vec<usize> = shuffled.iter().copied().filter(|r| !in_test.contains(r)).collect();
        let (train_part, validation_part) = {
            let (t, v) = train::split(rest.len(), options.validation_fraction, seed + fold as u64);
            (t.iter().map(|&i| rest[i]).collect::<Vec<_>>(), v.iter().map(|&i| rest[i]).collect::<Vec<_>>())
        };
        let (mlp, _, _) = train::fit(&dataset, &train_part, &validation_part, options, &Device::Cpu, |_, _, _| {})?;
        let mut predicted = train::predict(&mlp, &dataset, test, &Device::Cpu)?;
        // In file order, as `router train` sees the rows, so the anchors are chosen the same way.
        let mut pool = rest.clone();
        pool.sort_unstable();
        if let Some(difficulty) = fit_difficulty_on(&dataset, &pool, &groups, options)? {
            let embeddings = dataset.rows_x(test);
            let x = Tensor::from_slice(&embeddings, (test.len(), dataset.dim), &Device::Cpu)?;
            difficulty.adjust(&x, &embeddings, &mut predicted)?;
        }
        let neighbours = knn::predict(&dataset, &rest, test, knn::DEFAULT_K);
        for (k, &row) in test.iter().enumerate() {
            mlp_q[row * width..(row + 1) * width].copy_from_slice(&predicted[k * width..(k + 1) * width]);
            knn_q[row * width..(row + 1) * width].copy_from_slice(&neighbours[k * width..(k + 1) * width]);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let mean_cost = mean_costs(&examples, &models);
    let mlp = routing_report(&examples, &models, &mlp_q, &mean_cost, points);
    let knn = routing_report(&examples, &models, &knn_q, &mean_cost, points);
    let summary = serde_json::json!({
        "folds": fold_names,
        "mlp": { "aiq": mlp.aiq, "cost_to_best_quality_ratio": mlp.cost_to_best_quality_ratio, "two_model": mlp.two_model },
        "knn": { "k": knn::DEFAULT_K, "aiq": knn.aiq, "cost_to_best_quality_ratio": knn.cost_to_best_quality_ratio, "two_model": knn.two_model },
        "zero_router_aiq": mlp.zero_router_aiq,
        "oracle_aiq": mlp.oracle_aiq,
        "best_single": mlp.best_single,
        "mlp_report": mlp,
    });
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn export_command(config: Option<&Path>, since: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let since_ms = crate::store::export::parse_date(since)
        .with_context(|| format!("--since `{since}`: expected a date as YYYY-MM-DD"))?;
    let config = match super::load(config) {
        Ok(loaded) => loaded.config,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let exported = runtime.block_on(async {
        let store = crate::store::Store::open(&config.store)?;
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?,
        );
        let exported = store.export_feedback(since_ms, &mut file).await?;
        file.flush()?;
        anyhow::Ok(exported)
    })?;
    println!(
        "wrote {} rows to {} ({} with prompt text{})",
        exported.rows,
        out.display(),
        exported.with_prompt,
        if exported.with_prompt < exported.rows {
            "; the others were served with request_log.log_prompts off"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
