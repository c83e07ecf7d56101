//! Azure Blob / ADLS Gen2 locations: parsing `az://` and `abfss://`, building the store, and the
//! explicit create-container call that `object_store` lacks.

use std::sync::Arc;
use std::time::Duration;

use object_store::azure::{AzureAuthorizer, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::lake::LakeOptions;

/// The storage emulator's account and its documented, public key (not a secret: it is printed in
/// Microsoft's Azurite documentation and only opens a local emulator).
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A parsed Azure location.
#[derive(Debug, Clone)]
pub(crate) struct AzureTarget {
    pub container: String,
    pub prefix: String,
    /// `None`: taken from the environment (`AZURE_STORAGE_ACCOUNT_NAME`) by `object_store`.
    pub account: Option<String>,
    /// A blob endpoint override (Azurite, sovereign clouds), without query or credentials.
    pub endpoint: Option<Url>,
    /// The endpoint is loopback: use the emulator's account and key unless the environment has a key.
    pub emulator: bool,
    location: String,
}

impl AzureTarget {
    pub fn parse(location: &str, options: &LakeOptions) -> Result<Self, String> {
        let url = Url::parse(location).map_err(|e| format!("not a URL: {e}"))?;
        let path = url.path().trim_matches('/').to_string();
        let (container, account) = match url.scheme() {
            "az" => (url.host_str().unwrap_or_default().to_string(), None),
            "abfs" | "abfss" => {
                let host = url.host_str().unwrap_or_default();
                let account = host.split('.').next().unwrap_or_default();
                if url.username().is_empty() || account.is_empty() || !host.contains(".dfs.") {
                    return Err("expected abfss://container@account.dfs.core.windows.net/prefix".into());
                }
                (url.username().to_string(), Some(account.to_string()))
            }
            other => return Err(format!("not an Azure scheme: {other}")),
        };
        validate_container(&container)?;
        if url.password().is_some() || url.query().is_some() {
            return Err("credentials do not belong in the lake location; use the environment".into());
        }
        let endpoint = match &options.azure_endpoint {
            None => None,
            Some(endpoint) => {
                let mut endpoint =
                    Url::parse(endpoint.trim_end_matches('/')).map_err(|e| format!("bad Azure endpoint: {e}"))?;
                endpoint.set_query(None);
                if !endpoint.username().is_empty() || endpoint.password().is_some() {
                    return Err("the Azure endpoint must not carry credentials".into());
                }
                Some(endpoint)
            }
        };
        let emulator = endpoint.as_ref().is_some_and(is_loopback);
        if let Some(endpoint) = &endpoint
            && endpoint.scheme() != "https"
            && !emulator
        {
            return Err("plain http:// is refused except on loopback".into());
        }
        let account = match (&endpoint, account) {
            (Some(endpoint), None) if emulator => Some(
                endpoint
                    .path_segments()
                    .and_then(|mut s| s.next())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(EMULATOR_ACCOUNT)
                    .to_string(),
            ),
            (_, account) => account,
        };
        Ok(AzureTarget { container, prefix: path, account, endpoint, emulator, location: location.to_string() })
    }

    /// The location as given (no secret can be in it: `parse` refuses passwords and queries),
    /// plus the endpoint override.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{} (endpoint {endpoint})", self.location),
            None => self.location.clone(),
        }
    }

    pub fn build(&self) -> Result<(Arc<dyn ObjectStore>, MicrosoftAzure), String> {
        let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(&self.container);
        if let Some(account) = &self.account {
            builder = builder.with_account(account);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/').to_string());
        }
        if self.emulator {
            if std::env::var_os("AZURE_STORAGE_ACCOUNT_KEY").is_none()
                && std::env::var_os("AZURE_STORAGE_ACCESS_KEY").is_none()
            {
                builder = builder.with_access_key(EMULATOR_KEY);
            }
            // A local emulator answers at once or not at all: fail fast instead of retrying for minutes.
            builder = builder
                .with_allow_http(true)
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(true)
                        .with_connect_timeout(Duration::from_secs(3))
                        .with_timeout(Duration::from_secs(60)),
                )
                .with_retry(RetryConfig {
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(20),
                    ..Default::default()
                });
        }
        let azure = builder.build().map_err(|e| format!("Azure configuration: {e}"))?;
        Ok((Arc::new(azure.clone()), azure))
    }

    fn container_url(&self) -> Result<Url, String> {
        let mut url = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => {
                let account = self.account()?;
                Url::parse(&format!("https://{account}.blob.core.windows.net")).map_err(|e| e.to_string())?
            }
        };
        url.path_segments_mut()
            .map_err(|()| "endpoint cannot be a base URL".to_string())?
            .pop_if_empty()
            .push(&self.container);
        url.set_query(Some("restype=container"));
        Ok(url)
    }

    fn account(&self) -> Result<String, String> {
        self.account.clone().or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT_NAME").ok()).ok_or_else(|| {
            "no storage account: set AZURE_STORAGE_ACCOUNT_NAME or use abfss://container@account…".to_string()
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn validate_container(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!("invalid container name {name:?} (3–63 lowercase letters, digits, single hyphens)"))
    }
}

/// `PUT <container>?restype=container`, signed with whatever credential the store resolved
/// (shared key, SAS or Entra ID bearer token). An existing container is fine.
pub(crate) async fn create_container(target: &AzureTarget, azure: &MicrosoftAzure) -> Result<(), String> {
    let url = target.container_url()?;
    let account = target.account()?;
    let credential = azure.credentials().get_credential().await.map_err(|e| format!("resolving credentials: {e}"))?;
    let mut request = HttpRequest::new(HttpRequestBody::empty());
    *request.method_mut() = "PUT".parse().map_err(|_| "internal: PUT is a method".to_string())?;
    *request.uri_mut() = url.as_str().parse().map_err(|e| format!("bad container URL: {e}"))?;
    request.headers_mut().insert("content-length", object_store::HeaderValue::from_static("0"));
    AzureAuthorizer::new(&credential, &account).try_authorize(&mut request).map_err(|e| format!("signing: {e}"))?;
    let options = ClientOptions::new()
        .with_allow_http(target.emulator)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60));
    let client: HttpClient = ReqwestConnector::default().connect(&options).map_err(|e| format!("HTTP client: {e}"))?;
    let response = client.execute(request).await.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    // 201 Created; 409 ContainerAlreadyExists is what we wanted too.
    if status.is_success() || status.as_u16() == 409 {
        return Ok(());
    }
    let body = response.into_body().bytes().await.unwrap_or_default();
    let code = String::from_utf8_lossy(&body)
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or("")
        .to_string();
    Err(format!("HTTP {status} {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abfss_location_names_container_account_and_prefix() {
        let t =
            AzureTarget::parse("abfss://lake@acme.dfs.core.windows.net/xledger/raw", &LakeOptions::default()).unwrap();
        assert_eq!(
            (t.container.as_str(), t.account.as_deref(), t.prefix.as_str()),
            ("lake", Some("acme"), "xledger/raw")
        );
        assert_eq!(t.container_url().unwrap().as_str(), "https://acme.blob.core.windows.net/lake?restype=container");
    }

    #[test]
    fn azurite_endpoint_is_emulator_with_path_style_account() {
        let options = LakeOptions {
            azure_endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
            ..Default::default()
        };
        let t = AzureTarget::parse("az://data/x", &options).unwrap();
        assert!(t.emulator);
        assert_eq!(t.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(
            t.container_url().unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/data?restype=container"
        );
    }

    #[test]
    fn plain_http_to_a_remote_endpoint_is_refused() {
        let options = LakeOptions { azure_endpoint: Some("http://example.com/acct".into()), ..Default::default() };
        assert!(AzureTarget::parse("az://data", &options).unwrap_err().contains("loopback"));
    }

    #[test]
    fn secrets_in_the_location_are_refused_and_never_described() {
        let err = AzureTarget::parse("az://data/x?sig=SECRET", &LakeOptions::default()).unwrap_err();
        assert!(!err.contains("SECRET"));
        let options = LakeOptions {
            azure_endpoint: Some("https://acct.blob.core.windows.net/?sv=1&sig=SECRET".into()),
            ..Default::default()
        };
        let t = AzureTarget::parse("az://data", &options).unwrap();
        assert!(!t.describe().contains("SECRET"), "{}", t.describe());
    }

    #[test]
    fn bad_container_names_are_refused() {
        for location in ["az://Data", "az://a", "az://a--b", "abfss://UP@acct.dfs.core.windows.net"] {
            assert!(AzureTarget::parse(location, &LakeOptions::default()).is_err(), "{location}");
        }
    }
}
