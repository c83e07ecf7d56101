//! The default Entra ID chain on Azure Functions / App Service: the managed identity endpoint
//! (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`) is asked for a token of the user-assigned identity
//! named by `AZURE_CLIENT_ID` (the Terraform deploys only a user-assigned one), and that token
//! reaches App Configuration. Its own test binary: it sets process environment variables.

use sync_state::{StoreOptions, open_store};
use test_support::app_config as fake;
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn the_managed_identity_token_is_requested_for_the_user_assigned_client_id() {
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

    // SAFETY: this test binary has this one test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", format!("{}/msi/token", identity.uri()));
        std::env::set_var("IDENTITY_HEADER", "identity-header-secret");
        std::env::set_var("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555");
        std::env::remove_var("AZURE_FEDERATED_TOKEN_FILE");
    }

    let store = open_store(&app_config.uri(), StoreOptions::default()).await.expect("store opens");
    let state = store.get("timesheets").await.expect("App Configuration accepts the managed identity's token");
    assert!(state.is_none());
    identity.verify().await;
}
