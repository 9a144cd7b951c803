//! Vertex AI's access tokens from a service-account key: an RS256-signed JWT assertion exchanged at
//! the key's `token_uri` (OAuth 2.0 JWT bearer grant), cached until shortly before it expires.
//!
//! The request path reads the cached token under a `std` read lock (never held across an await).
//! When it is stale, one refresh runs: moka's `try_get_with` makes concurrent callers wait for the
//! same fetch instead of each signing and posting their own.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::providers::ProviderError;
use crate::providers::native::unix_now;
use crate::providers::transport::{ErrorDetail, transport_error, upstream_error_as};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's default token endpoint, for keys that do not name one.
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A token is replaced this long before it expires (or at half its life, if that comes first).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Assertions are valid for the hour Google allows at most.
const ASSERTION_LIFETIME: u64 = 3600;

/// A service-account key, parsed and ready to sign.
pub struct ServiceAccount {
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    token_uri: reqwest::Url,
    pub project_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("client_email", &self.client_email).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    private_key: String,
    client_email: String,
    #[serde(default)]
    token_uri: Option<String>,
}

impl ServiceAccount {
    /// Reads the key file at `path`. Errors say what is wrong without repeating the key.
    pub fn load(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
        Self::parse(&text).map_err(|e| format!("`{path}`: {e}"))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // serde's message could quote a piece of the key: say only where it went wrong.
        let file: KeyFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a service-account key (JSON with private_key and client_email), line {} column {}",
                e.line(),
                e.column()
            )
        })?;
        if file.kind != "service_account" {
            return Err(format!("a key of type `{}`; a `service_account` key is needed", file.kind));
        }
        let key = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
            .map_err(|_| "its private_key is not an RSA key in PEM".to_owned())?;
        let token_uri = reqwest::Url::parse(file.token_uri.as_deref().unwrap_or(TOKEN_URI))
            .map_err(|e| format!("its token_uri is not a URL: {e}"))?;
        Ok(Self {
            client_email: file.client_email,
            key_id: file.private_key_id,
            key,
            token_uri,
            project_id: file.project_id,
        })
    }

    /// The signed JWT that asks for a token.
    fn assertion(&self, now: u64) -> Result<String, jsonwebtoken::errors::Error> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: self.token_uri.as_str(),
            iat: now,
            exp: now + ASSERTION_LIFETIME,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

#[derive(Clone)]
struct AccessToken {
    /// `Bearer …`, marked sensitive.
    authorization: HeaderValue,
    /// How long it is used before being replaced.
    lifetime: Duration,
    fresh_until: Instant,
}

/// Expires the cached refresh result when the token should be replaced.
struct UntilStale;

impl moka::Expiry<(), AccessToken> for UntilStale {
    fn expire_after_create(&self, _: &(), token: &AccessToken, _: Instant) -> Option<Duration> {
        Some(token.lifetime)
    }
}

/// Access tokens for one service account, shared by all requests of a provider.
pub struct TokenSource {
    provider: String,
    account: ServiceAccount,
    client: reqwest::Client,
    cached: RwLock<Option<AccessToken>>,
    refresh: moka::future::Cache<(), AccessToken>,
}

impl TokenSource {
    pub fn new(provider: &str, account: ServiceAccount, client: reqwest::Client) -> Self {
        Self {
            provider: provider.to_owned(),
            account,
            client,
            cached: RwLock::new(None),
            refresh: moka::future::Cache::builder().max_capacity(1).expire_after(UntilStale).build(),
        }
    }

    /// The `Authorization` header value for the next request.
    pub async fn authorization(&self) -> Result<HeaderValue, ProviderError> {
        if let Some(authorization) = self.fresh() {
            return Ok(authorization);
        }
        let token = self.refresh.try_get_with((), self.fetch()).await.map_err(Arc::unwrap_or_clone)?;
        if let Ok(mut cached) = self.cached.write() {
            *cached = Some(token.clone());
        }
        Ok(token.authorization)
    }

    fn fresh(&self) -> Option<HeaderValue> {
        let cached = self.cached.read().ok()?;
        let token = cached.as_ref()?;
        (Instant::now() < token.fresh_until).then(|| token.authorization.clone())
    }

    async fn fetch(&self) -> Result<AccessToken, ProviderError> {
        let assertion = self.account.assertion(unix_now()).map_err(|e| ProviderError::MissingCredentials {
            provider: self.provider.clone(),
            env: format!("a service-account key that can sign ({e})"),
        })?;
        let response = self
            .client
            .post(self.account.token_uri.clone())
            .form(&[("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| transport_error(&self.provider, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| transport_error(&self.provider, &e))?;
        if !status.is_success() {
            return Err(upstream_error_as(&self.provider, status, &headers, &body, Some(&assertion), oauth_error));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            ProviderError::invalid_response(&self.provider, "the token endpoint's answer has no access_token")
        })?;
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", token.access_token))
            .map_err(|_| ProviderError::invalid_response(&self.provider, "the access token is not a header value"))?;
        authorization.set_sensitive(true);
        let expires_in = Duration::from_secs(token.expires_in.unwrap_or(ASSERTION_LIFETIME));
        let lifetime = expires_in.saturating_sub(REFRESH_MARGIN.min(expires_in / 2));
        Ok(AccessToken { authorization, lifetime, fresh_until: Instant::now() + lifetime })
    }
}

/// OAuth's `{"error": "invalid_grant", "error_description": "…"}`. A refused assertion is the
/// gateway's credentials being refused: 401, whatever status the endpoint chose.
fn oauth_error(_: &HeaderMap, body: &[u8]) -> ErrorDetail {
    #[derive(Deserialize)]
    struct OAuthError {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let parsed: Option<OAuthError> = serde_json::from_slice(body).ok();
    let (error, description) = parsed.map_or((None, None), |p| (p.error, p.error_description));
    let reason = match (error, description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let refused = reason.starts_with("invalid_") || reason.starts_with("unauthorized");
    ErrorDetail {
        message: Some(format!("the service account's token request failed: {reason}")),
        kind: Some(if refused { "authentication_error" } else { "server_error" }.to_owned()),
        code: None,
        param: None,
        status: refused.then_some(StatusCode::UNAUTHORIZED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::routing::post;

    /// The conformance suite's throwaway key.
    const KEY: &str = include_str!("../../../tests/fixtures/vertex_ai/service_account.json");
    const PUBLIC: &str = include_str!("../../../tests/fixtures/vertex_ai/service_account.public.pem");

    fn account(token_uri: &str) -> ServiceAccount {
        ServiceAccount::parse(&KEY.replace("{base_url}", token_uri)).unwrap()
    }

    /// A token endpoint that counts its calls, answers after a pause, and refuses when asked to.
    async fn token_endpoint(refuse: bool) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/token",
            post(move |body: String| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let form: std::collections::HashMap<String, String> =
                        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    assert_eq!(form["grant_type"], GRANT_TYPE);
                    if refuse {
                        return (
                            StatusCode::BAD_REQUEST,
                            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
                        );
                    }
                    (StatusCode::OK, r#"{"access_token":"ya29.test","expires_in":3599,"token_type":"Bearer"}"#)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    #[test]
    fn the_assertion_is_signed_with_googles_claims() {
        let account = account("https://oauth2.example/x");
        let jwt = account.assertion(1_700_000_000).unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://oauth2.example/x/token"]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(data.claims["iss"], "cherrypick-test@test-project.iam.gserviceaccount.com");
        assert_eq!(data.claims["scope"], SCOPE);
        assert_eq!(data.claims["exp"], 1_700_003_600_u64);
        assert_eq!(account.project_id.as_deref(), Some("test-project"));
    }

    #[test]
    fn bad_key_files_say_why_without_the_key() {
        assert!(ServiceAccount::parse("{").unwrap_err().contains("not a service-account key"));
        let user = r#"{"type":"authorized_user","private_key":"x","client_email":"e"}"#;
        assert!(ServiceAccount::parse(user).unwrap_err().contains("authorized_user"));
        let bad = r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n","client_email":"e"}"#;
        let error = ServiceAccount::parse(bad).unwrap_err();
        assert!(!error.contains("SECRETSTUFF"), "{error}");
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch_and_the_token_is_cached() {
        let (url, calls) = token_endpoint(false).await;
        let source = Arc::new(TokenSource::new("vertex", account(&url), reqwest::Client::new()));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(async move { source.authorization().await })
            })
            .collect();
        for task in tasks {
            let value = task.await.unwrap().unwrap();
            assert_eq!(value, "Bearer ya29.test");
            assert!(value.is_sensitive());
        }
        source.authorization().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_assertion_is_a_401() {
        let (url, calls) = token_endpoint(true).await;
        let source = TokenSource::new("vertex", account(&url), reqwest::Client::new());
        let Err(ProviderError::Upstream(error)) = source.authorization().await else { panic!() };
        assert_eq!(error.status, StatusCode::UNAUTHORIZED);
        assert!(error.message.contains("invalid_grant: Invalid JWT Signature."), "{}", error.message);
        // A failure is not cached: the next request tries again.
        assert!(source.authorization().await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
