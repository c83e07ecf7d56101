//! Authentication for App Configuration: HMAC-SHA256 from a connection string's access key, or an Entra
//! ID bearer token. Secrets live only in [`Redacted`] values and request headers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::{AccessToken, TokenCredential};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use url::Url;

use crate::StateError;

/// The scope of App Configuration's data plane.
pub(crate) const APP_CONFIGURATION_SCOPE: &str = "https://azconfig.io/.default";
/// Refresh a cached token this long before it expires.
const TOKEN_REFRESH_MARGIN: azure_core::time::Duration = azure_core::time::Duration::minutes(5);

/// A value that must never be printed: `Debug` shows `[redacted]`.
#[derive(Clone)]
pub(crate) struct Redacted<T>(pub(crate) T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An App Configuration access key: its id and its decoded secret.
#[derive(Debug, Clone)]
pub(crate) struct HmacKey {
    pub(crate) id: String,
    pub(crate) secret: Redacted<Vec<u8>>,
}

/// The parts of a connection string `Endpoint=…;Id=…;Secret=…`.
#[derive(Debug)]
pub(crate) struct ConnectionString {
    pub(crate) endpoint: String,
    pub(crate) key: HmacKey,
}

impl ConnectionString {
    /// Parses a connection string. Errors name the missing or malformed part, never its value.
    pub(crate) fn parse(text: &str) -> Result<Self, StateError> {
        let (mut endpoint, mut id, mut secret) = (None, None, None);
        for part in text.split(';').map(str::trim).filter(|part| !part.is_empty()) {
            // Split at the first `=` only: base64 secrets end in `=` padding.
            let Some((name, value)) = part.split_once('=') else {
                return Err(StateError::InvalidConfig(
                    "App Configuration connection string has a part without `=`".to_owned(),
                ));
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.trim().to_owned()),
                "id" => id = Some(value.trim().to_owned()),
                "secret" => secret = Some(value.trim()),
                // Unknown parts are ignored, like the Azure SDKs do.
                _ => {}
            }
        }
        let missing =
            |what: &str| StateError::InvalidConfig(format!("App Configuration connection string has no `{what}=`"));
        let endpoint = endpoint.ok_or_else(|| missing("Endpoint"))?;
        let id = id.filter(|id| !id.is_empty()).ok_or_else(|| missing("Id"))?;
        let secret = BASE64.decode(secret.ok_or_else(|| missing("Secret"))?).map_err(|_| {
            StateError::InvalidConfig("App Configuration connection string: `Secret` is not base64".to_owned())
        })?;
        Ok(Self { endpoint, key: HmacKey { id, secret: Redacted(secret) } })
    }
}

/// `base64(SHA-256(body))`, sent as `x-ms-content-sha256` (also for an empty body).
pub(crate) fn content_hash(body: &[u8]) -> String {
    BASE64.encode(Sha256::digest(body))
}

/// `Host` as the request carries it: the host, and the port when it is not the scheme's default.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The headers that authenticate one request with HMAC-SHA256, per Microsoft's "App Configuration REST
/// API — HMAC authentication": `x-ms-date`, `x-ms-content-sha256` and `Authorization`.
///
/// String to sign: `METHOD \n path_and_query \n x-ms-date;host;content-hash`, signed with the
/// base64-decoded secret.
pub(crate) fn hmac_headers(
    key: &HmacKey,
    method: &str,
    url: &Url,
    body: &[u8],
    date: SystemTime,
) -> [(&'static str, String); 3] {
    let date = httpdate::fmt_http_date(date);
    let hash = content_hash(body);
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let string_to_sign =
        format!("{}\n{path_and_query}\n{date};{};{hash}", method.to_ascii_uppercase(), host_header(url));
    // HMAC-SHA256 takes a key of any length, so `new_from_slice` cannot fail here.
    let signature = match Hmac::<Sha256>::new_from_slice(&key.secret.0) {
        Ok(mut mac) => {
            mac.update(string_to_sign.as_bytes());
            BASE64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    let authorization = format!(
        "HMAC-SHA256 Credential={}&SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}",
        key.id
    );
    [("x-ms-date", date), ("x-ms-content-sha256", hash), ("authorization", authorization)]
}

/// Entra ID bearer tokens for App Configuration, cached until shortly before they expire.
pub(crate) struct EntraAuth {
    credential: Arc<dyn TokenCredential>,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
}

impl fmt::Debug for EntraAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraAuth").field("credential", &self.credential).finish_non_exhaustive()
    }
}

impl EntraAuth {
    pub(crate) fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self { credential, cached: tokio::sync::Mutex::new(None) }
    }

    /// The `Authorization` header value.
    pub(crate) async fn authorization(&self) -> Result<Redacted<String>, StateError> {
        let mut cached = self.cached.lock().await;
        let now = azure_core::time::OffsetDateTime::now_utc();
        if let Some(token) = cached.as_ref().filter(|token| token.expires_on - TOKEN_REFRESH_MARGIN > now) {
            return Ok(Redacted(format!("Bearer {}", token.token.secret())));
        }
        let token = self
            .credential
            .get_token(&[APP_CONFIGURATION_SCOPE], None)
            .await
            .map_err(|e| StateError::Auth(e.to_string()))?;
        let header = Redacted(format!("Bearer {}", token.token.secret()));
        *cached = Some(token);
        Ok(header)
    }
}

/// The credentials tried, in order, when no credential is given: workload identity (when its
/// environment is set), managed identity (when App Service / Functions advertise it), the Azure CLI,
/// then managed identity through the VM metadata endpoint. The first that answers is used from then on.
#[derive(Debug)]
pub(crate) struct DefaultEntraCredential {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    chosen: std::sync::OnceLock<usize>,
}

impl DefaultEntraCredential {
    pub(crate) fn new() -> Result<Self, StateError> {
        use azure_identity::{
            AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
            WorkloadIdentityCredential,
        };
        let auth = |e: azure_core::Error| StateError::Auth(e.to_string());
        // A user-assigned identity (as the Terraform deploys) must be named, or the token
        // endpoint answers for the (absent) system-assigned one; AZURE_CLIENT_ID names it.
        let managed_identity = || {
            let user_assigned_id =
                std::env::var("AZURE_CLIENT_ID").ok().filter(|id| !id.trim().is_empty()).map(UserAssignedId::ClientId);
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id,
                ..ManagedIdentityCredentialOptions::default()
            }))
            .map_err(auth)
        };
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            sources.push(("workload identity", WorkloadIdentityCredential::new(None).map_err(auth)?));
        }
        let app_service = std::env::var_os("IDENTITY_ENDPOINT").is_some() || std::env::var_os("MSI_ENDPOINT").is_some();
        if app_service {
            sources.push(("managed identity", managed_identity()?));
        }
        sources.push(("Azure CLI", AzureCliCredential::new(None).map_err(auth)?));
        if !app_service {
            sources.push(("managed identity (VM metadata endpoint)", managed_identity()?));
        }
        Ok(Self { sources, chosen: std::sync::OnceLock::new() })
    }
}

#[async_trait::async_trait]
impl TokenCredential for DefaultEntraCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some((_, source)) = self.chosen.get().and_then(|&index| self.sources.get(index)) {
            return source.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (index, (name, source)) in self.sources.iter().enumerate() {
            match source.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    tracing::info!(credential = name, "App Configuration: authenticated with Entra ID");
                    let _ = self.chosen.set(index);
                    return Ok(token);
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!("no Entra ID credential worked ({})", failures.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2018-05-11T18:48:36Z, the date of Microsoft's example request.
    fn fixed_date() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_526_064_516)
    }

    /// The reference values below were computed outside this crate, with Python's `hmac`, `hashlib` and
    /// `base64` following the documented recipe on the same request:
    /// secret = b64decode("bm90LWEtcmVhbC1zZWNyZXQtb25seS1mb3ItdGVzdHM=") ("not-a-real-secret-only-for-tests"),
    /// string to sign = "PUT\n/kv/xledger-sync%2Fstate%2Ftimesheets?label=prod&api-version=1.0\n
    /// Fri, 11 May 2018 18:48:36 GMT;example.azconfig.io;<content hash>".
    #[test]
    fn hmac_signature_equals_the_reference_computed_by_the_documented_recipe() {
        let connection = ConnectionString::parse(
            "Endpoint=https://example.azconfig.io;Id=test-id-1;Secret=bm90LWEtcmVhbC1zZWNyZXQtb25seS1mb3ItdGVzdHM=",
        )
        .unwrap();
        let url =
            Url::parse("https://example.azconfig.io/kv/xledger-sync%2Fstate%2Ftimesheets?label=prod&api-version=1.0")
                .unwrap();
        let body = br#"{"value":"{\"format_version\":1}","content_type":"application/json"}"#;
        let [date, hash, authorization] = hmac_headers(&connection.key, "put", &url, body, fixed_date());
        assert_eq!(date, ("x-ms-date", "Fri, 11 May 2018 18:48:36 GMT".to_owned()));
        assert_eq!(hash, ("x-ms-content-sha256", "fxz7Y9p/Pw0fzbasqBZckzJYv8PTslfB9AJLgKOrIDg=".to_owned()));
        assert_eq!(
            authorization,
            (
                "authorization",
                "HMAC-SHA256 Credential=test-id-1&SignedHeaders=x-ms-date;host;x-ms-content-sha256\
                 &Signature=/F8KJe4IRqB8AQ0hEGmlUy1PVDNH0Mlex22fq+XhwuM="
                    .to_owned()
            )
        );
    }

    #[test]
    fn the_content_hash_of_an_empty_body_is_sha256_of_nothing() {
        assert_eq!(content_hash(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn host_header_carries_a_non_default_port_only() {
        assert_eq!(host_header(&Url::parse("https://x.azconfig.io/kv").unwrap()), "x.azconfig.io");
        assert_eq!(host_header(&Url::parse("http://127.0.0.1:8080/kv").unwrap()), "127.0.0.1:8080");
    }

    #[test]
    fn connection_string_errors_and_debug_never_show_the_secret() {
        let secret = "c3VwZXItc2VjcmV0LXZhbHVl";
        let parsed =
            ConnectionString::parse(&format!("Endpoint=https://x.azconfig.io;Id=abc;Secret={secret}")).unwrap();
        let debug = format!("{parsed:?}");
        assert!(!debug.contains(secret) && !debug.contains("super-secret"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");

        let not_base64 = "not base64 at all!";
        let err =
            ConnectionString::parse(&format!("Endpoint=https://x.azconfig.io;Id=abc;Secret={not_base64}")).unwrap_err();
        assert!(!err.to_string().contains(not_base64), "{err}");
        let err = ConnectionString::parse(&format!("Endpoint=https://x.azconfig.io;Secret={secret}")).unwrap_err();
        assert!(err.to_string().contains("no `Id=`") && !err.to_string().contains(secret), "{err}");
    }
}
