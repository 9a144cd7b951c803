//! The provider conformance suite's machinery. Each provider has a folder `tests/fixtures/<provider>/`:
//! - `provider.toml`: its `[providers.p]` and `[models.m]` (and `[models.e]` for embeddings) config,
//!   with `{base_url}` (the fake upstream) and `{credentials_file}` placeholders;
//! - one JSON file per scenario: the request a client sends the gateway, the request the provider
//!   must receive (method, path, query, headers, exact body), the provider's documented reply, and
//!   what the client must get back.
//!
//! The fake upstream answers a request with the scenario whose expected request it matches; a
//! request that matches none, or whose headers or signature are wrong, is a recorded mismatch.
#![allow(dead_code, reason = "each test binary uses a different part of the support code")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

/// Scenarios every provider's folder must have.
pub const REQUIRED: &[&str] = &[
    "chat",
    "system",
    "multi_turn",
    "stream",
    "tools",
    "stream_tools",
    "json_mode",
    "image",
    "error_auth",
    "error_rate_limit",
    "error_context",
    "error_server",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `chat` (default) or `embeddings`.
    #[serde(default = "chat")]
    pub endpoint: String,
    /// What the client sends the gateway.
    pub request: Value,
    /// What the provider must receive; absent when the gateway must answer without calling it.
    #[serde(default)]
    pub upstream: Option<ExpectedRequest>,
    /// The provider's answer.
    #[serde(default)]
    pub reply: Option<UpstreamReply>,
    pub expect: Expect,
}

fn chat() -> String {
    "chat".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRequest {
    #[serde(default = "post")]
    pub method: String,
    pub path: String,
    /// The exact query parameters (none when absent).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers that must be present with these values (`*`: any value).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers that must not be sent (e.g. a bearer header next to a native key header).
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// The exact JSON body.
    pub body: Value,
    /// AWS SigV4: the fake recomputes the signature from these credentials and compares.
    #[serde(default)]
    pub sigv4: Option<SigV4>,
}

fn post() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigV4 {
    pub access_key: String,
    pub secret_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamReply {
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body.
    #[serde(default)]
    pub json: Option<Value>,
    /// An SSE body: the events, each as written on the wire (`event: …\ndata: …`), or the whole text.
    #[serde(default)]
    pub sse: Option<Sse>,
    /// An `application/vnd.amazon.eventstream` body (Bedrock), framed here with real CRCs.
    #[serde(default)]
    pub eventstream: Option<Vec<EventStreamMessage>>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sse {
    Events(Vec<String>),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventStreamMessage {
    /// `:event-type` of an event message.
    #[serde(default)]
    pub event: Option<String>,
    /// `:exception-type` of an exception message.
    #[serde(default)]
    pub exception: Option<String>,
    pub payload: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: u16,
    /// Response headers that must be present with these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A subset of the JSON answer.
    #[serde(default)]
    pub json: Option<Value>,
    /// A subset of the `error` object of an error answer.
    #[serde(default)]
    pub error: Option<Value>,
    /// A subset of the streamed answer, assembled from its chunks (see `assemble`).
    #[serde(default)]
    pub stream: Option<Value>,
}

pub struct ProviderFixtures {
    pub provider: String,
    pub dir: PathBuf,
    pub scenarios: Vec<Scenario>,
}

pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

impl ProviderFixtures {
    pub fn load(provider: &str) -> Self {
        let dir = fixtures_root().join(provider);
        let mut scenarios = Vec::new();
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            if path.extension().is_none_or(|e| e != "json") || name == "service_account" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            let mut scenario: Scenario =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            scenario.name = name;
            scenarios.push(scenario);
        }
        scenarios.sort_by(|a, b| a.name.cmp(&b.name));
        Self { provider: provider.to_owned(), dir, scenarios }
    }

    /// The gateway config snippet for this provider, placeholders filled in.
    pub fn provider_config(&self, base_url: &str, credentials_file: &Path) -> String {
        let text = std::fs::read_to_string(self.dir.join("provider.toml")).expect("provider.toml");
        text.replace("{base_url}", base_url).replace("{credentials_file}", &credentials_file.display().to_string())
    }

    /// The service-account key (Vertex AI), with its `token_uri` pointed at the fake upstream.
    pub fn service_account(&self, base_url: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("service_account.json")).ok()?;
        Some(text.replace("{base_url}", base_url))
    }
}

// ---------------------------------------------------------------------------------------------
// The fake upstream

pub const ACCESS_TOKEN: &str = "ya29.conformance-test-token";

struct FakeState {
    provider: String,
    scenarios: Vec<Scenario>,
    /// RS256 public key checking the service account's token requests, when the provider uses one.
    token_key: Option<(String, String)>,
    mismatches: Mutex<Vec<String>>,
    calls: Mutex<Vec<String>>,
}

pub struct ConformanceUpstream {
    addr: std::net::SocketAddr,
    state: Arc<FakeState>,
}

impl ConformanceUpstream {
    /// `token_key`: the PEM public key and client email of the service account, if any.
    pub async fn start(fixtures: &ProviderFixtures, token_key: Option<(String, String)>) -> Self {
        let state = Arc::new(FakeState {
            provider: fixtures.provider.clone(),
            scenarios: fixtures.scenarios.clone(),
            token_key,
            mismatches: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn mismatches(&self) -> Vec<String> {
        self.state.mismatches.lock().unwrap().clone()
    }

    /// The scenarios the upstream answered, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.calls.lock().unwrap().clone()
    }
}

async fn answer(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/token" && state.token_key.is_some() {
        return token(&state, &body);
    }
    let fail = |detail: String| {
        state.mismatches.lock().unwrap().push(format!("{}: {detail}", state.provider));
        Response::builder()
            .status(599)
            .header("content-type", "application/json")
            .body(Body::from(json!({"error": {"message": format!("conformance: {detail}")}}).to_string()))
            .expect("response")
    };
    let Ok(received) = serde_json::from_slice::<Value>(&body) else {
        return fail(format!("{method} {} sent a body that is not JSON", uri.path()));
    };
    let candidates: Vec<&Scenario> = state
        .scenarios
        .iter()
        .filter(|s| s.upstream.as_ref().is_some_and(|u| u.method == method.as_str() && u.path == uri.path()))
        .collect();
    let Some(scenario) = candidates.iter().find(|s| s.upstream.as_ref().is_some_and(|u| u.body == received)).copied()
    else {
        let nearest = candidates
            .iter()
            .map(|s| {
                let mut errors = Vec::new();
                equal(&received, &s.upstream.as_ref().expect("filtered").body, "", &mut errors);
                (errors.len(), s.name.as_str(), errors)
            })
            .min_by_key(|(n, _, _)| *n);
        let detail = match nearest {
            Some((_, name, errors)) => format!("nearest scenario `{name}` differs: {}", errors.join("; ")),
            None => "no scenario expects this method and path".to_owned(),
        };
        return fail(format!("{method} {} body {received}: {detail}", uri.path()));
    };
    state.calls.lock().unwrap().push(scenario.name.clone());
    let expected = scenario.upstream.as_ref().expect("matched on it");
    let mut problems = Vec::new();
    let query: BTreeMap<String, String> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    if query != expected.query {
        problems.push(format!("query {query:?}, expected {:?}", expected.query));
    }
    for (name, value) in &expected.headers {
        match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            None => problems.push(format!("header `{name}` missing")),
            Some(got) if value != "*" && got != value => {
                problems.push(format!("header `{name}`: `{got}`, expected `{value}`"))
            }
            Some(_) => {}
        }
    }
    for name in &expected.absent_headers {
        if headers.contains_key(name.as_str()) {
            problems.push(format!("header `{name}` must not be sent"));
        }
    }
    if let Some(sigv4) = &expected.sigv4
        && let Err(problem) = check_sigv4(sigv4, &method, &uri, &headers, &body)
    {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return fail(format!("scenario `{}`: {}", scenario.name, problems.join("; ")));
    }
    match &scenario.reply {
        Some(reply) => render(reply),
        None => fail(format!("scenario `{}` has an upstream request but no reply", scenario.name)),
    }
}

fn render(reply: &UpstreamReply) -> Response {
    let mut response = Response::builder().status(reply.status);
    let body = if let Some(json) = &reply.json {
        response = response.header("content-type", "application/json");
        Body::from(json.to_string())
    } else if let Some(sse) = &reply.sse {
        response = response.header("content-type", "text/event-stream");
        let text = match sse {
            Sse::Events(events) => events.iter().map(|e| format!("{e}\n\n")).collect(),
            Sse::Text(text) => text.clone(),
        };
        Body::from(text)
    } else if let Some(messages) = &reply.eventstream {
        response = response.header("content-type", "application/vnd.amazon.eventstream");
        Body::from(eventstream(messages))
    } else {
        Body::empty()
    };
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response.body(body).expect("response")
}

/// Frames messages as AWS event streams do (prelude, headers, payload, CRC32s).
pub fn eventstream(messages: &[EventStreamMessage]) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let mut out = Vec::new();
    for message in messages {
        let payload = serde_json::to_vec(&message.payload).expect("payload");
        let mut framed = Message::new(payload)
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())));
        framed = match (&message.event, &message.exception) {
            (Some(event), _) => framed
                .add_header(Header::new(":event-type", HeaderValue::String(event.clone().into())))
                .add_header(Header::new(":message-type", HeaderValue::String("event".into()))),
            (None, Some(exception)) => framed
                .add_header(Header::new(":exception-type", HeaderValue::String(exception.clone().into())))
                .add_header(Header::new(":message-type", HeaderValue::String("exception".into()))),
            (None, None) => panic!("an eventstream message needs `event` or `exception`"),
        };
        aws_smithy_eventstream::frame::write_message_to(&framed, &mut out).expect("framed");
    }
    out
}

/// Google's OAuth token endpoint: checks the service account's signed JWT, answers a token.
fn token(state: &FakeState, body: &[u8]) -> Response {
    let (public_pem, client_email) = state.token_key.as_ref().expect("checked");
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let problem = (|| {
        if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Some(format!("grant_type {:?}", form.get("grant_type")));
        }
        let assertion = form.get("assertion")?;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).ok()?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // The audience is the token URI, checked below: its port is only known at run time.
        validation.validate_aud = false;
        let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Some(format!("JWT does not verify: {e}")),
        };
        if claims["iss"] != json!(client_email) {
            return Some(format!("iss {}", claims["iss"]));
        }
        if claims["scope"] != "https://www.googleapis.com/auth/cloud-platform" {
            return Some(format!("scope {}", claims["scope"]));
        }
        if !claims["aud"].as_str().is_some_and(|aud| aud.ends_with("/token")) {
            return Some(format!("aud {}", claims["aud"]));
        }
        None
    })();
    if let Some(problem) = problem {
        state.mismatches.lock().unwrap().push(format!("{}: token request: {problem}", state.provider));
        return Response::builder().status(400).body(Body::from(r#"{"error":"invalid_grant"}"#)).expect("response");
    }
    state.calls.lock().unwrap().push("token".into());
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}).to_string()))
        .expect("response")
}

/// Recomputes the SigV4 signature of a request from its own `x-amz-date` and signed headers.
fn check_sigv4(sigv4: &SigV4, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or(format!("no `{name}` header"));
    let authorization = header("authorization")?;
    let signed: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .ok_or("no SignedHeaders in authorization")?
        .split(';')
        .collect();
    let time = parse_amz_date(header("x-amz-date")?).ok_or("bad x-amz-date")?;
    let identity = aws_credential_types::Credentials::new(
        &sigv4.access_key,
        &sigv4.secret_key,
        sigv4.session_token.clone(),
        None,
        "conformance",
    )
    .into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&sigv4.region)
        .name(&sigv4.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?;
    let host = header("host")?;
    let url = format!("https://{host}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let signed_headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|name| **name != "x-amz-content-sha256" || headers.contains_key("x-amz-content-sha256"))
        .map(|name| Ok((*name, header(name)?)))
        .collect::<Result<_, String>>()?;
    let signable = SignableRequest::new(method.as_str(), &url, signed_headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params.into()).map_err(|e| e.to_string())?.into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_owned())
        .ok_or("no signature computed")?;
    if expected != authorization {
        return Err(format!("SigV4 signature does not verify: got `{authorization}`, expected `{expected}`"));
    }
    if let Some(token) = &sigv4.session_token
        && header("x-amz-security-token")? != token
    {
        return Err("x-amz-security-token is not the session token".into());
    }
    Ok(())
}

fn parse_amz_date(text: &str) -> Option<SystemTime> {
    // 20150830T123600Z
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

// ---------------------------------------------------------------------------------------------
// Comparing

/// Exact JSON equality, collecting the paths that differ.
pub fn equal(actual: &Value, expected: &Value, path: &str, errors: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for key in a.keys().chain(e.keys()).collect::<std::collections::BTreeSet<_>>() {
                let here = format!("{path}/{key}");
                match (a.get(key), e.get(key)) {
                    (Some(av), Some(ev)) => equal(av, ev, &here, errors),
                    (Some(av), None) => errors.push(format!("{here}: unexpected {av}")),
                    (None, Some(ev)) => errors.push(format!("{here}: missing (expected {ev})")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                equal(av, ev, &format!("{path}/{i}"), errors);
            }
        }
        (Value::Number(a), Value::Number(e)) if a.as_f64() == e.as_f64() => {}
        _ if actual == expected => {}
        _ => errors.push(format!("{}: {actual}, expected {expected}", if path.is_empty() { "/" } else { path })),
    }
}

/// Whether `actual` has everything `expected` has: objects may have more keys (an expected `null`
/// also matches a missing key); arrays must have the same length.
pub fn contains(actual: &Value, expected: &Value, path: &str, errors: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, ev) in e {
                let here = format!("{path}/{key}");
                match a.get(key) {
                    Some(av) => contains(av, ev, &here, errors),
                    None if ev.is_null() => {}
                    None => errors.push(format!("{here}: missing (expected {ev})")),
                }
            }
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                contains(av, ev, &format!("{path}/{i}"), errors);
            }
        }
        (Value::Number(a), Value::Number(e)) if a.as_f64() == e.as_f64() => {}
        _ if actual == expected => {}
        _ => errors.push(format!("{}: {actual}, expected {expected}", if path.is_empty() { "/" } else { path })),
    }
}

/// A streamed answer put back together: `{role, content, refusal, tool_calls: [{index, id, name,
/// arguments}], finish_reason, usage, chunks}` where `chunks` counts the `data:` chunks.
pub fn assemble(chunks: &[Value]) -> Result<Value, String> {
    let mut role = Value::Null;
    let mut content: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut finish_reason = Value::Null;
    let mut usage = Value::Null;
    let mut tools: BTreeMap<u64, (Value, Value, String)> = BTreeMap::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if chunk["object"] != "chat.completion.chunk" {
            return Err(format!("chunk {i} is not a chat.completion.chunk: {chunk}"));
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
        for choice in chunk["choices"].as_array().ok_or(format!("chunk {i} has no choices array: {chunk}"))? {
            if choice["index"] != 0 {
                return Err(format!("chunk {i}: choice index {}", choice["index"]));
            }
            let delta = &choice["delta"];
            if let Some(r) = delta.get("role").filter(|r| !r.is_null()) {
                role = r.clone();
            }
            if let Some(text) = delta["content"].as_str() {
                content.get_or_insert_default().push_str(text);
            }
            if let Some(text) = delta["refusal"].as_str() {
                refusal.get_or_insert_default().push_str(text);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().ok_or(format!("chunk {i}: tool call without index"))?;
                let entry = tools.entry(index).or_insert((Value::Null, Value::Null, String::new()));
                if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                    entry.0 = id.clone();
                }
                if let Some(name) = call["function"].get("name").filter(|v| !v.is_null()) {
                    entry.1 = name.clone();
                }
                if let Some(arguments) = call["function"]["arguments"].as_str() {
                    entry.2.push_str(arguments);
                }
            }
            if !choice["finish_reason"].is_null() {
                finish_reason = choice["finish_reason"].clone();
            }
        }
    }
    let tool_calls: Vec<Value> = tools
        .into_iter()
        .map(|(index, (id, name, arguments))| json!({"index": index, "id": id, "name": name, "arguments": arguments}))
        .collect();
    Ok(json!({
        "role": role,
        "content": content,
        "refusal": refusal,
        "tool_calls": tool_calls,
        "finish_reason": finish_reason,
        "usage": usage,
        "chunks": chunks.len(),
    }))
}
