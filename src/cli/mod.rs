//! The command line: `serve`, `config check`, `models pull`, and the router's offline commands.

mod cache;
mod plot;
mod router;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Loaded};
use crate::server::{Server, shutdown_signal};
use crate::telemetry::init_logging;

#[derive(Debug, Parser)]
#[command(name = "cherrypick", version, about = "An OpenAI-compatible LLM gateway with a learned router")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file; the embedded default (`config/cherrypick.toml`) when not given.
        #[arg(long, short, env = "CHERRYPICK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Fetch models the gateway needs.
    Models {
        #[command(subcommand)]
        command: router::ModelsCommand,
    },
    /// Evaluate the semantic cache, offline.
    Cache {
        #[command(subcommand)]
        command: cache::CacheCommand,
    },
    /// Train, sweep and evaluate the learned router, offline.
    Router {
        #[command(subcommand)]
        command: router::RouterCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and report every problem at once (exit 1 if any).
    Check { file: PathBuf },
}

pub fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Config { command: ConfigCommand::Check { file } } => Ok(check(&file)),
        Command::Models { command } => router::models(command),
        Command::Router { command } => router::run(command),
        Command::Cache { command } => cache::run(command),
    }
}

pub(crate) fn load(path: Option<&Path>) -> Result<Loaded, config::ConfigError> {
    match path {
        Some(path) => config::load_file(path),
        None => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            config::load_str(config::EMBEDDED_DEFAULT, "the embedded default config", &env)
        }
    }
}

fn check(file: &Path) -> ExitCode {
    match config::load_file(file) {
        Ok(Loaded { config, warnings }) => {
            for warning in &warnings {
                println!("warning: {warning}");
            }
            println!("{}: ok ({} providers, {} models)", file.display(), config.providers.len(), config.models.len());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Loaded { config, warnings } = match load(path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    init_logging(&config.log);
    if config.router.enabled {
        crate::router::device::set_threads_before_start(config.router.threads);
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.server.worker_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(&config).await?;
        shutdown_signal().await;
        tracing::info!("shutdown signal received: draining");
        server.shutdown().await;
        crate::telemetry::shutdown_telemetry();
        Ok(ExitCode::SUCCESS)
    })
}
