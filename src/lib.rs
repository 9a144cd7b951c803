//! cherrypick: an OpenAI-compatible LLM gateway. See the README's architecture section for how a
//! request flows through these parts.

pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod memory;
pub mod openai;
pub mod providers;
pub mod redis_client;
pub mod router;
pub mod server;
pub mod store;
pub mod telemetry;
