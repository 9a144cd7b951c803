//! The deployment files hold together: `docker/compose.yaml` parses, every service it depends on,
//! every named volume it mounts and every file it binds exists, published ports are well formed, and
//! the addresses the parts use to reach each other (Prometheus -> gateway metrics, Grafana ->
//! Prometheus, the gateway -> PostgreSQL, Redis, Qdrant) name a service and the port it listens on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn load(path: &str) -> Yaml {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")).remove(0)
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec().map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn keys(yaml: &Yaml) -> BTreeSet<String> {
    yaml.as_hash().map(|h| h.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// `host:port` pairs in `text` after `scheme://` (or bare), e.g. `redis://redis:6379`.
fn addresses(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',' || c == '[' || c == ']') {
        let rest = word.split_once("://").map_or(word, |(_, rest)| rest);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host_port = rest.split('/').next().unwrap_or_default();
        if let Some((host, port)) = host_port.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
            && !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            out.push((host.to_owned(), port));
        }
    }
    out
}

#[test]
fn compose_services_volumes_files_and_ports_exist() {
    let compose = load("docker/compose.yaml");
    let services = &compose["services"];
    let names = keys(services);
    for expected in ["gateway", "postgres", "redis", "qdrant", "weaviate", "prometheus", "grafana"] {
        assert!(names.contains(expected), "service `{expected}` in {names:?}");
    }
    let declared = keys(&compose["volumes"]);
    let mut used_volumes = BTreeSet::new();
    let mut problems = Vec::new();
    for name in &names {
        let service = &services[name.as_str()];
        for dependency in keys(&service["depends_on"]).into_iter().chain(strings(&service["depends_on"])) {
            if !names.contains(&dependency) {
                problems.push(format!("{name} depends on unknown service `{dependency}`"));
            }
            let condition = service["depends_on"][dependency.as_str()]["condition"].as_str();
            if condition == Some("service_healthy") && services[dependency.as_str()]["healthcheck"].is_badvalue() {
                problems.push(format!("{name} waits for `{dependency}` to be healthy, which has no healthcheck"));
            }
        }
        for mount in strings(&service["volumes"]) {
            let source = mount.split(':').next().unwrap_or_default();
            if source.starts_with('.') {
                if !repo("docker").join(source).exists() {
                    problems.push(format!("{name} mounts `{source}`, which is not in docker/"));
                }
            } else if !source.starts_with('/') && !source.starts_with('$') {
                used_volumes.insert(source.to_owned());
                if !declared.contains(source) {
                    problems.push(format!("{name} mounts undeclared volume `{source}`"));
                }
            }
        }
        for port in strings(&service["ports"]) {
            let parts: Vec<&str> = port.split(':').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.parse::<u16>().is_err()) {
                problems.push(format!("{name} publishes `{port}`: expected HOST:CONTAINER"));
            }
        }
        if let Some(build) = service["build"].as_hash().map(|_| &service["build"]) {
            let context = repo("docker").join(build["context"].as_str().unwrap_or("."));
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            if !dockerfile.is_file() {
                problems.push(format!("{name} builds from `{}`, which does not exist", dockerfile.display()));
            }
        }
    }
    for volume in declared.difference(&used_volumes) {
        problems.push(format!("volume `{volume}` is declared but no service mounts it"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Which port each service listens on inside the network.
fn listening_ports() -> BTreeMap<&'static str, BTreeSet<u16>> {
    let gateway = std::fs::read_to_string(repo("docker/cherrypick.compose.toml")).unwrap();
    let config: toml::Table = gateway.parse().unwrap();
    let port = |path: &[&str]| {
        let mut value = &toml::Value::Table(config.clone());
        for key in path {
            value = &value[*key];
        }
        value.as_str().and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| p.parse::<u16>().ok()).unwrap()
    };
    BTreeMap::from([
        ("gateway", BTreeSet::from([port(&["server", "listen"]), port(&["metrics", "listen"])])),
        ("postgres", BTreeSet::from([5432])),
        ("redis", BTreeSet::from([6379])),
        ("qdrant", BTreeSet::from([6333, 6334])),
        ("weaviate", BTreeSet::from([8080, 50051])),
        ("prometheus", BTreeSet::from([9090])),
        ("grafana", BTreeSet::from([3000])),
    ])
}

#[test]
fn every_address_between_the_parts_names_a_service_and_its_port() {
    let ports = listening_ports();
    let compose = load("docker/compose.yaml");
    // Published ports map to a port the service listens on.
    for (name, listens) in &ports {
        for published in strings(&compose["services"][*name]["ports"]) {
            let container: u16 = published.rsplit(':').next().unwrap().parse().unwrap();
            assert!(listens.contains(&container), "{name} publishes {published}, but listens on {listens:?}");
        }
    }
    let mut checked = 0;
    for file in [
        "docker/prometheus/prometheus.yml",
        "docker/grafana/provisioning/datasources/prometheus.yaml",
        "docker/cherrypick.compose.toml",
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        for (host, port) in addresses(&text) {
            if matches!(host.as_str(), "0.0.0.0" | "127.0.0.1" | "localhost") {
                continue;
            }
            let listens =
                ports.get(host.as_str()).unwrap_or_else(|| panic!("{file}: `{host}` is not a compose service"));
            assert!(listens.contains(&port), "{file}: {host}:{port}, but {host} listens on {listens:?}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "prometheus -> gateway, grafana -> prometheus, gateway -> postgres, redis, qdrant");
}

#[test]
fn dockerfile_copies_what_the_build_reads() {
    let dockerfile = std::fs::read_to_string(repo("docker/Dockerfile")).unwrap();
    // include_str! and migrations are read at compile time: the build stage must copy them.
    for path in ["Cargo.toml", "Cargo.lock", "src", "config", "migrations"] {
        assert!(dockerfile.lines().any(|l| l.starts_with("COPY") && l.contains(path)), "the Dockerfile copies {path}");
    }
    assert!(dockerfile.contains("USER "), "the runtime image runs as a non-root user");
}
