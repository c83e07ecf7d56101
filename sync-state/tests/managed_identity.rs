//! The default Entra ID chain on Azure Functions / App Service: the managed identity endpoint
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`) is asked for a token of the user-assigned identity
//! named by `AZURE_CLIENT_ID` (the Terraform deploys only a user-assigned one), and that token
//! reaches App Configuration. The store runs in a child process of this test with those variables
//! set (a process's own environment is not safe to change while threads run); the stand-ins run here.

use sync_state::{StoreOptions, open_store};
use test_support::app_config as fake;
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TEST_NAME: &str = "the_managed_identity_token_is_requested_for_the_user_assigned_client_id";
/// Set in the child: where App Configuration is.
const CHILD_VAR: &str = "XLEDGER_TEST_MANAGED_IDENTITY_APP_CONFIG";

#[tokio::test]
async fn the_managed_identity_token_is_requested_for_the_user_assigned_client_id() {
    if let Ok(app_config) = std::env::var(CHILD_VAR) {
        let store = open_store(&app_config, StoreOptions::default()).await.expect("store opens");
        let state = store.get("timesheets").await.expect("App Configuration accepts the managed identity's token");
        assert!(state.is_none());
        return;
    }
    let identity = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .and(query_param("client_id", "11111111-2222-3333-4444-555555555555"))
        .and(query_param("resource", "https://azconfig.io"))
        .and(header("x-identity-header", "identity-header-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": fake::BEARER,
            "expires_on": "4102444800",
            "resource": "https://azconfig.io",
            "token_type": "Bearer",
            "client_id": "11111111-2222-3333-4444-555555555555"
        })))
        .expect(1)
        .mount(&identity)
        .await;
    let app_config = MockServer::start().await;
    Mock::given(any()).respond_with(fake::FakeAppConfig::entra()).mount(&app_config).await;

    let child = tokio::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env(CHILD_VAR, app_config.uri())
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", identity.uri()))
        .env("IDENTITY_HEADER", "identity-header-secret")
        .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .output()
        .await
        .expect("the child test runs");
    assert!(
        child.status.success(),
        "the store in the child failed:\n{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    identity.verify().await;
}
