//! AWS Signature Version 4 for Bedrock requests, computed by the `aws-sigv4` crate: the signature
//! covers the method, the URL (path double-encoded, as every AWS service but S3 expects), the
//! signed headers and the SHA-256 of the body.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Signs requests for one service in one region with one set of credentials.
#[derive(Debug)]
pub struct Signer {
    identity: Identity,
    region: String,
    service: &'static str,
    settings: SigningSettings,
}

impl Signer {
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
        region: &str,
        service: &'static str,
    ) -> Self {
        let credentials =
            Credentials::new(access_key_id, secret_access_key, session_token.map(str::to_owned), None, "cherrypick");
        Self { identity: credentials.into(), region: region.to_owned(), service, settings: SigningSettings::default() }
    }

    /// The headers that sign a request: `x-amz-date`, `authorization` and, with temporary
    /// credentials, `x-amz-security-token`. `url` is the URL as sent (already percent-encoded);
    /// `headers` are the other headers to sign (`host` is taken from the URL).
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<HeaderMap, String> {
        let params = SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(self.settings.clone())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
        let (instructions, _signature) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
        let (signing_headers, _) = instructions.into_parts();
        let mut out = HeaderMap::with_capacity(signing_headers.len());
        for header in signing_headers {
            let mut value = HeaderValue::try_from(header.value()).map_err(|e| e.to_string())?;
            // The signature and the session token are credentials: keep them out of debug output.
            value.set_sensitive(header.name() != "x-amz-date");
            out.insert(HeaderName::from_static(header.name()), value);
        }
        Ok(out)
    }

    /// Also signs (and sends) `x-amz-content-sha256`, as the test suite's body-signing cases do.
    #[cfg(test)]
    fn with_payload_hash_header(mut self) -> Self {
        self.settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // AWS's SigV4 test suite (aws-signing-test-suite/v4, shipped with the aws-sigv4 crate and every
    // AWS SDK): these credentials, region `us-east-1`, service `service`, 2015-08-30T12:36:00Z.
    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_signer(session_token: Option<&str>) -> Signer {
        Signer::new(ACCESS_KEY, SECRET_KEY, session_token, "us-east-1", "service")
    }

    fn authorization(headers: &HeaderMap) -> &str {
        headers["authorization"].to_str().unwrap()
    }

    #[test]
    fn get_vanilla() {
        let headers = suite_signer(None).sign("GET", "https://example.amazonaws.com/", &[], b"", suite_time()).unwrap();
        assert_eq!(headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(headers["authorization"].is_sensitive());
    }

    #[test]
    fn post_vanilla() {
        let headers =
            suite_signer(None).sign("POST", "https://example.amazonaws.com/", &[], b"", suite_time()).unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let headers = suite_signer(None)
            .sign("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", &[], b"", suite_time())
            .unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let headers = suite_signer(None)
            .with_payload_hash_header()
            .sign(
                "POST",
                "https://example.amazonaws.com/",
                &[("content-type", "application/x-www-form-urlencoded"), ("content-length", "13")],
                b"Param1=value1",
                suite_time(),
            )
            .unwrap();
        assert_eq!(headers["x-amz-content-sha256"], "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
             Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let headers =
            suite_signer(Some(token)).sign("GET", "https://example.amazonaws.com/", &[], b"", suite_time()).unwrap();
        assert_eq!(headers["x-amz-security-token"], token);
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
    }

    #[test]
    fn a_bedrock_path_is_signed_double_encoded_with_its_port() {
        // A model id's `:` travels as `%3A`; the canonical request encodes it again (`%253A`), as
        // the AWS SDKs do for every service but S3. Signing the same URL twice is deterministic,
        // and the port is part of the signed host.
        let signer = Signer::new(ACCESS_KEY, SECRET_KEY, None, "us-east-1", "bedrock");
        let url = "http://127.0.0.1:8080/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        let a = signer.sign("POST", url, &[("content-type", "application/json")], b"{}", suite_time()).unwrap();
        let b = signer.sign("POST", url, &[("content-type", "application/json")], b"{}", suite_time()).unwrap();
        assert_eq!(a["authorization"], b["authorization"]);
        assert!(
            authorization(&a).contains("/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date,")
        );
        let other = "http://127.0.0.1:8081/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        let c = signer.sign("POST", other, &[("content-type", "application/json")], b"{}", suite_time()).unwrap();
        assert_ne!(a["authorization"], c["authorization"]);
    }
}
