//! Reading a config: TOML text -> environment overlay -> typed sections -> cross-checks. Every problem
//! is collected so an operator fixes them in one go.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::{Config, ProviderKind};

const ENV_PREFIX: &str = "CHERRYPICK__";
const SECTIONS: &[&str] = &[
    "server",
    "auth",
    "log",
    "metrics",
    "providers",
    "models",
    "routing",
    "router",
    "cache",
    "retry",
    "timeouts",
    "breaker",
    "store",
    "limits",
    "request_log",
];

/// A configuration that failed to load: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{} has {n} problem{}:", self.source_name, if n == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// A configuration that loaded, with what an operator should know but that does not stop the start.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Loads a file, with the process environment as overlay and secret source.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError { source_name: name.clone(), problems: vec![format!("cannot read the file: {e}")] })?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_str(&text, &name, &env)
}

/// Loads TOML text with `env` (name, value) as overlay and secret source.
pub fn load_str(text: &str, source_name: &str, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let fail = |problems| ConfigError { source_name: source_name.to_owned(), problems };
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| fail(vec![e.to_string()]))?;
    let mut problems = Vec::new();
    overlay_env(&mut table, env, &mut problems);

    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(format!("unknown key `{key}`"));
        }
    }
    let mut config = Config {
        server: section(table.remove("server"), "server", &mut problems),
        auth: section(table.remove("auth"), "auth", &mut problems),
        log: section(table.remove("log"), "log", &mut problems),
        metrics: section(table.remove("metrics"), "metrics", &mut problems),
        routing: section(table.remove("routing"), "routing", &mut problems),
        router: section(table.remove("router"), "router", &mut problems),
        cache: section(table.remove("cache"), "cache", &mut problems),
        retry: section(table.remove("retry"), "retry", &mut problems),
        timeouts: section(table.remove("timeouts"), "timeouts", &mut problems),
        breaker: section(table.remove("breaker"), "breaker", &mut problems),
        store: section(table.remove("store"), "store", &mut problems),
        limits: section(table.remove("limits"), "limits", &mut problems),
        request_log: section(table.remove("request_log"), "request_log", &mut problems),
        providers: entries(table.remove("providers"), "providers", &mut problems),
        models: entries(table.remove("models"), "models", &mut problems),
    };
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut warnings = Vec::new();
    resolve_secrets(&mut config, &lookup, &mut warnings);
    cross_check(&config, &mut problems);
    if problems.is_empty() { Ok(Loaded { config, warnings }) } else { Err(fail(problems)) }
}

/// `CHERRYPICK__SERVER__LISTEN=0.0.0.0:80` sets `server.listen`. Values are read as TOML when they
/// parse as a TOML value (numbers, booleans, arrays), otherwise as strings.
fn overlay_env(table: &mut Table, env: &[(String, String)], problems: &mut Vec<String>) {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            problems.push(format!("environment variable `{name}` has an empty key segment"));
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.clone()));
        if let Err(key) = set_path(table, &keys, value) {
            problems.push(format!("environment variable `{name}`: `{key}` is not a table"));
        }
    }
}

/// Sets `keys` (a dotted path) in `table`, creating tables on the way; fails on a non-table step.
fn set_path(table: &mut Table, keys: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = keys.split_first().expect("split yields at least one segment");
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    match table.entry(first.clone()).or_insert_with(|| Value::Table(Table::new())) {
        Value::Table(inner) => set_path(inner, rest, value),
        _ => Err(first.clone()),
    }
}

/// Deserialises one section; an absent or broken section is its default (the problem is recorded).
fn section<T: DeserializeOwned + Default>(value: Option<Value>, path: &str, problems: &mut Vec<String>) -> T {
    value.and_then(|value| parse_value(value, path, problems)).unwrap_or_default()
}

/// Deserialises `value`, reporting unknown keys with their full path and the first type error.
fn parse_value<T: DeserializeOwned>(value: Value, path: &str, problems: &mut Vec<String>) -> Option<T> {
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path| unknown.push(format!("unknown key `{path}.{p}`"));
    let deserializer = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let result = serde_path_to_error::deserialize(deserializer);
    problems.append(&mut unknown);
    match result {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            let at = e.path().to_string();
            let at = if at == "." { path.to_owned() } else { format!("{path}.{at}") };
            // toml appends "in `key`" on later lines; the path already says where.
            let message = e.into_inner().to_string();
            problems.push(format!("`{at}`: {}", message.lines().next().unwrap_or_default()));
            None
        }
    }
}

/// Deserialises each entry of a `[section.NAME]` table on its own, so one bad entry does not hide
/// the problems of the others.
fn entries<T: DeserializeOwned>(
    value: Option<Value>,
    path: &str,
    problems: &mut Vec<String>,
) -> std::collections::BTreeMap<String, T> {
    let mut out = std::collections::BTreeMap::new();
    let Some(value) = value else { return out };
    let Value::Table(table) = value else {
        problems.push(format!("`{path}` must be a table"));
        return out;
    };
    for (name, entry) in table {
        let entry_path = format!("{path}.{name}");
        if let Some(parsed) = parse_value(entry, &entry_path, problems) {
            out.insert(name, parsed);
        }
    }
    out
}

fn resolve_secrets(config: &mut Config, lookup: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) {
    if let Some(key) = &mut config.auth.master_key {
        key.resolve(lookup);
        if key.expose().is_none() {
            warnings.push(format!("`auth.master_key` is {key}: the gateway accepts requests without a key"));
        }
    }
    let cache = &mut config.cache;
    let secrets = [
        ("cache.l2.url", &mut cache.l2.url),
        ("cache.l3.url", &mut cache.l3.url),
        ("cache.semantic.api_key", &mut cache.semantic.api_key),
        ("store.url", &mut config.store.url),
        ("limits.redis_url", &mut config.limits.redis_url),
    ];
    for (path, secret) in secrets {
        if let Some(secret) = secret {
            secret.resolve(lookup);
            if secret.expose().is_none() {
                let effect = if path == "store.url" {
                    "the store uses the SQLite file in `store.data_dir`"
                } else {
                    "that part is off until it is set"
                };
                warnings.push(format!("`{path}` is {secret}: {effect}"));
            }
        }
    }
    for (name, provider) in &mut config.providers {
        for (field, secret) in provider.secrets_mut() {
            let Some(secret) = secret else { continue };
            secret.resolve(lookup);
            if secret.expose().is_none() {
                warnings.push(format!("`providers.{name}.{field}` is {secret}: its models answer 503 until it is set"));
            } else if secret.is_literal() {
                warnings.push(format!("`providers.{name}.{field}` is written literally: prefer `env::NAME`"));
            }
        }
    }
}

fn cross_check(config: &Config, problems: &mut Vec<String>) {
    for (name, provider) in &config.providers {
        match &provider.base_url {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                problems.push(format!("`providers.{name}.base_url`: `{url}` is not an http(s) URL"));
            }
            Some(url) if reqwest::Url::parse(url).is_err() => {
                problems.push(format!("`providers.{name}.base_url`: `{url}` is not a valid URL"));
            }
            None if matches!(provider.kind, ProviderKind::OpenaiCompatible | ProviderKind::Azure) => {
                problems.push(format!("`providers.{name}.base_url` is required for this kind"));
            }
            _ => {}
        }
        if provider.connect_timeout_secs.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            problems.push(format!("`providers.{name}.connect_timeout_secs` must be a number of seconds above 0"));
        }
        for (header, value) in &provider.headers {
            if http::HeaderName::try_from(header.as_str()).is_err()
                || http::HeaderValue::try_from(value.as_str()).is_err()
            {
                problems.push(format!("`providers.{name}.headers.{header}` is not a valid HTTP header"));
            }
        }
    }
    let retries = std::iter::once(("retry".to_owned(), &config.retry))
        .chain(config.models.iter().filter_map(|(name, m)| Some((format!("models.{name}.retry"), m.retry.as_ref()?))));
    for (path, retry) in retries {
        if retry.attempts == 0 {
            problems.push(format!("`{path}.attempts` must be at least 1 (1: no retries)"));
        }
    }
    let timeouts = std::iter::once(("timeouts".to_owned(), &config.timeouts)).chain(
        config.models.iter().filter_map(|(name, m)| Some((format!("models.{name}.timeouts"), m.timeouts.as_ref()?))),
    );
    for (path, timeouts) in timeouts {
        for (field, secs) in [("first_byte_secs", timeouts.first_byte_secs), ("total_secs", timeouts.total_secs)] {
            if !(secs.is_finite() && secs > 0.0) {
                problems.push(format!("`{path}.{field}` must be a positive number of seconds, not {secs}"));
            }
        }
    }
    let breaker = &config.breaker;
    if breaker.window == 0 || breaker.min_calls == 0 || breaker.half_open_probes == 0 {
        problems.push("`breaker.window`, `min_calls` and `half_open_probes` must be at least 1".to_owned());
    }
    if !(breaker.failure_ratio > 0.0 && breaker.failure_ratio <= 1.0) {
        problems.push(format!("`breaker.failure_ratio` must be in (0, 1], not {}", breaker.failure_ratio));
    }
    if !(breaker.open_secs.is_finite() && breaker.open_secs >= 0.0) {
        problems.push(format!("`breaker.open_secs` must be a number of seconds, not {}", breaker.open_secs));
    }
    let known: HashSet<&str> = config
        .models
        .iter()
        .flat_map(|(name, m)| std::iter::once(name).chain(&m.aliases))
        .map(String::as_str)
        .collect();
    for (name, model) in &config.models {
        for fallback in &model.fallbacks {
            if !known.contains(fallback.as_str()) {
                problems.push(format!("`models.{name}.fallbacks`: no model named `{fallback}`"));
            }
        }
    }
    let mut public_names = HashSet::new();
    for (name, model) in &config.models {
        if !config.providers.contains_key(&model.provider) {
            problems.push(format!("`models.{name}.provider`: no provider named `{}` in [providers]", model.provider));
        }
        let prices = [
            ("input_per_mtok", model.input_per_mtok),
            ("cached_input_per_mtok", model.cached_input_per_mtok.unwrap_or(0.0)),
            ("output_per_mtok", model.output_per_mtok),
        ];
        for (field, price) in prices {
            if !price.is_finite() || price < 0.0 {
                problems.push(format!("`models.{name}.{field}` must be a non-negative number, not {price}"));
            }
        }
        for public in std::iter::once(name).chain(&model.aliases) {
            if super::is_auto(public) {
                problems.push(format!("`models.{name}`: the name `{public}` is reserved for the router"));
            }
            if !public_names.insert(public.as_str()) {
                problems.push(format!("`models.{name}`: the name `{public}` is used twice"));
            }
        }
    }
    if let Some(default) = &config.routing.default
        && !public_names.contains(default.as_str())
    {
        problems.push(format!("`routing.default`: no model or alias named `{default}` in [models]"));
    }
    check_router(config, problems);
    check_cache(&config.cache, problems);
}

fn check_cache(cache: &crate::config::CacheConfig, problems: &mut Vec<String>) {
    use crate::config::{Secret, VectorBackend};
    if !cache.enabled {
        return;
    }
    let l2 = cache.l2.url.as_ref().and_then(Secret::expose);
    if let Some(url) = l2.filter(|u| !u.starts_with("redis")) {
        let scheme = url.split(':').next().unwrap_or_default();
        problems.push(format!(
            "`cache.l2.url` must be a redis://, rediss://, redis-cluster:// or redis-sentinel:// URL, not `{scheme}:`"
        ));
    }
    let l3 = cache.l3.url.as_ref().and_then(Secret::expose);
    if let Some(url) =
        l3.filter(|u| !(u.starts_with("sqlite:") || u.starts_with("postgres://") || u.starts_with("postgresql://")))
    {
        let scheme = url.split(':').next().unwrap_or_default();
        problems.push(format!("`cache.l3.url` must be a sqlite: or postgres:// URL, not `{scheme}:`"));
    }
    let semantic = &cache.semantic;
    if semantic.enabled && semantic.backend != VectorBackend::Embedded && semantic.url.is_none() {
        problems.push(format!("`cache.semantic.url` is required for backend `{:?}`", semantic.backend).to_lowercase());
    }
    if !(0.0..=1.0).contains(&semantic.threshold) {
        problems.push(format!("`cache.semantic.threshold` must be between 0 and 1, not {}", semantic.threshold));
    }
    if cache.l1.max_bytes == 0 && cache.l1.enabled {
        problems.push("`cache.l1.max_bytes` must be at least 1 (or set `cache.l1.enabled = false`)".into());
    }
}

fn check_router(config: &Config, problems: &mut Vec<String>) {
    let router = &config.router;
    if !router.enabled {
        return;
    }
    if config.routing.default.is_none() {
        problems.push("`router.enabled` needs `routing.default`: the route taken when the router steps aside".into());
    }
    for name in router.candidates.iter().chain(router.heads.keys()) {
        if !config.models.contains_key(name) {
            problems.push(format!("`router`: candidate `{name}` is not a key of [models]"));
        }
    }
    let policies = router.all_policies();
    if !policies.contains_key(&router.default_policy) {
        problems.push(format!("`router.default_policy`: no policy named `{}`", router.default_policy));
    }
    for (name, policy) in &policies {
        for (field, weight) in [("cost_weight", policy.cost_weight), ("latency_weight", policy.latency_weight)] {
            if !weight.is_finite() || weight < 0.0 {
                problems.push(format!("`router.policies.{name}.{field}` must be a non-negative number, not {weight}"));
            }
        }
    }
    for (field, value) in [
        ("max_tokens", router.max_tokens),
        ("max_batch", router.max_batch),
        ("queue", router.queue),
        ("threads", router.threads),
    ] {
        if value == 0 {
            problems.push(format!("`router.{field}` must be at least 1"));
        }
    }
    if !matches!(router.device.as_str(), "auto" | "cpu" | "cuda") {
        problems.push(format!("`router.device`: `{}` is not `auto`, `cpu` or `cuda`", router.device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const GOOD: &str = r#"
        [server]
        listen = "127.0.0.1:9000"
        [auth]
        master_key = "env::CP_MASTER"
        [providers.openai]
        kind = "openai"
        api_key = "env::CP_OPENAI"
        [models."gpt-4o-mini"]
        provider = "openai"
        input_per_mtok = 0.15
        output_per_mtok = 0.6
        aliases = ["mini"]
        [routing]
        default = "mini"
    "#;

    #[test]
    fn loads_resolves_secrets_and_applies_env_overrides() {
        let loaded = load_str(
            GOOD,
            "test",
            &env(&[
                ("CP_MASTER", "sk-master"),
                ("CHERRYPICK__SERVER__LISTEN", "0.0.0.0:81"),
                ("CHERRYPICK__SERVER__MAX_BODY_BYTES", "1024"),
            ]),
        )
        .unwrap();
        let config = loaded.config;
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:81");
        assert_eq!(config.server.max_body_bytes, 1024);
        assert_eq!(config.auth.master_key.unwrap().expose(), Some("sk-master"));
        assert_eq!(config.models["gpt-4o-mini"].aliases, ["mini"]);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("env::CP_OPENAI (unset)"));
    }

    #[test]
    fn reports_every_problem_at_once_with_full_paths() {
        let text = r#"
            colour = "blue"
            [server]
            listen = "nowhere"
            lissen = 1
            [providers.a]
            kind = "openai"
            base_url = "ftp://x"
            typo = true
            [providers.b]
            kind = "martian"
            [providers.c]
            kind = "openai_compatible"
            [models.m]
            provider = "missing"
            input_per_mtok = -1
            [models.auto]
            provider = "a"
            [routing]
            default = "nope"
        "#;
        let err = load_str(text, "bad.toml", &[]).unwrap_err();
        let all = err.to_string();
        for expected in [
            "unknown key `colour`",
            "unknown key `server.lissen`",
            "`server.listen`: invalid socket address",
            "unknown key `providers.a.typo`",
            "`providers.a.base_url`: `ftp://x` is not an http(s) URL",
            "`providers.b.kind`: unknown variant `martian`",
            "`providers.c.base_url` is required",
            "`models.m.provider`: no provider named `missing`",
            "`models.m.input_per_mtok` must be a non-negative number",
            "the name `auto` is reserved",
            "`routing.default`: no model or alias named `nope`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(err.problems.len(), 11, "{all}");
    }

    #[test]
    fn retries_timeouts_and_fallbacks_are_checked() {
        let text = r#"
            [retry]
            attempts = 0
            [timeouts]
            first_byte_secs = -1
            [providers.p]
            kind = "openai"
            [models.m]
            provider = "p"
            fallbacks = ["n", "ghost"]
            timeouts = { total_secs = 0 }
            [models.n]
            provider = "p"
            retry = { attempts = 2 }
        "#;
        let all = load_str(text, "t.toml", &[]).unwrap_err().to_string();
        for expected in [
            "`retry.attempts` must be at least 1",
            "`timeouts.first_byte_secs` must be a positive number of seconds",
            "`models.m.timeouts.total_secs` must be a positive number of seconds",
            "`models.m.fallbacks`: no model named `ghost`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert!(!all.contains("models.n"), "{all}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = load_str("[server\nlisten = 1", "x.toml", &[]).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
