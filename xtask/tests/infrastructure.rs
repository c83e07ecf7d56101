//! The deployment files agree with each other: Terraform is formatted, `functions/` holds exactly
//! the functions the handler routes (the catalog is compiled in from the handler's own source),
//! `host.json` starts the executable `cargo xtask package` ships, and Terraform configures what the
//! function files refer to.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

// The handler's function catalog, compiled from the handler's source so that this test and
// `xledger-sync serve` can never disagree. It has no dependencies by design.
#[allow(dead_code)]
#[path = "../../sync-runner/src/serve/functions.rs"]
mod catalog;

fn root() -> PathBuf {
    xtask::workspace_root()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

#[test]
fn terraform_is_formatted() {
    let output = Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff", "infrastructure"])
        .current_dir(root())
        .output()
        .unwrap_or_else(|err| {
            panic!("terraform is not installed or not on PATH ({err}); install Terraform >= 1.9 to run this check (CI has it)")
        });

    assert!(
        output.status.success(),
        "terraform fmt -check -recursive infrastructure failed; run `terraform fmt -recursive infrastructure`:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn function_folders_are_the_handler_catalog() {
    let (_, folders) = xtask::package::app_files(&root().join("functions")).unwrap();
    let mut routed: Vec<&str> = catalog::FUNCTIONS.iter().map(|def| def.name).collect();
    routed.sort();

    assert_eq!(folders, routed);
}

#[test]
fn function_json_files_parse_and_declare_the_catalog_triggers() {
    for def in catalog::FUNCTIONS {
        let file = read_json(&root().join("functions").join(def.name).join("function.json"));
        let bindings = file["bindings"].as_array().unwrap_or_else(|| panic!("{}: no bindings array", def.name));
        match def.trigger {
            catalog::Trigger::Timer { schedule_setting } => {
                assert_eq!(bindings[0]["type"], "timerTrigger", "{}", def.name);
                assert_eq!(bindings[0]["name"], catalog::TIMER_BINDING, "{}", def.name);
                assert_eq!(bindings[0]["schedule"], format!("%{schedule_setting}%"), "{}", def.name);
            }
            catalog::Trigger::AdminHttp { method, route } => {
                assert_eq!(bindings[0]["type"], "httpTrigger", "{}", def.name);
                assert_eq!(bindings[0]["name"], catalog::HTTP_REQUEST_BINDING, "{}", def.name);
                assert_eq!(bindings[0]["authLevel"], "admin", "{}: admin functions must need the master key", def.name);
                assert_eq!(bindings[0]["methods"], json!([method.to_ascii_lowercase()]), "{}", def.name);
                assert_eq!(bindings[0]["route"], route, "{}", def.name);
                assert_eq!(bindings[1]["type"], "http", "{}", def.name);
                assert_eq!(bindings[1]["name"], catalog::HTTP_RESPONSE_BINDING, "{}", def.name);
            }
        }
    }
}

#[test]
fn host_json_starts_the_packaged_executable_as_a_custom_handler() {
    let host = read_json(&root().join("functions/host.json"));

    assert_eq!(host["version"], "2.0");
    assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], xtask::package::EXECUTABLE_NAME);
    assert_eq!(host["customHandler"]["description"]["arguments"], json!(["serve"]));
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], false, "the handler speaks the invocation format");
    assert_eq!(host["extensionBundle"]["id"], "Microsoft.Azure.Functions.ExtensionBundle");
    let timeout =
        host["functionTimeout"].as_str().expect("host.json sets functionTimeout: passes derive their deadline from it");
    assert!(
        timeout.len() == 8 && timeout.as_bytes()[2] == b':' && timeout.as_bytes()[5] == b':',
        "functionTimeout {timeout:?} is hh:mm:ss"
    );
}

#[test]
fn terraform_sets_every_app_setting_the_functions_refer_to() {
    let module = read_text(&root().join("infrastructure/modules/xledger-sync/main.tf"));
    let variables = read_text(&root().join("infrastructure/modules/xledger-sync/variables.tf"));

    for def in catalog::FUNCTIONS {
        if let catalog::Trigger::Timer { schedule_setting } = def.trigger {
            assert!(
                module.contains(&format!("{schedule_setting} ")),
                "main.tf must set the app setting {schedule_setting}"
            );
        }
    }
    assert!(
        variables.contains(&format!("default     = \"{}\"", catalog::DEFAULT_SYNC_SCHEDULE)),
        "the default schedule is the handler's"
    );
    for setting in
        ["SYNC_ENTITIES", "XLEDGER_API_KEY", "XLEDGER_LAKE", "XLEDGER_STATE", "AzureWebJobsStorage__credential"]
    {
        assert!(module.contains(setting), "main.tf must set {setting}");
    }
    assert!(module.contains("runtime_name    = \"custom\""), "the Function App runs a custom handler");
    assert!(module.contains("@Microsoft.KeyVault(SecretUri="), "the API key is a Key Vault reference");
}

#[test]
fn each_environment_has_a_remote_backend_and_its_own_lake_container() {
    for environment in ["dev", "prod"] {
        let folder = root().join("infrastructure").join(environment);
        let main = read_text(&folder.join("main.tf"));
        let backend = read_text(&folder.join("backend.hcl"));

        assert!(main.contains("backend \"azurerm\""), "{environment}: remote state");
        assert!(
            main.contains(&format!("environment                  = \"{environment}\"")),
            "{environment}: module environment"
        );
        assert!(
            backend.contains(&format!("key                  = \"xledger-sync/{environment}.tfstate\"")),
            "{environment}: own state key"
        );
    }
    let module = read_text(&root().join("infrastructure/modules/xledger-sync/main.tf"));
    assert!(
        module.contains("lake_container_name = \"xledger-${var.environment}\""),
        "containers xledger-dev / xledger-prod"
    );
    assert!(module.contains("is_hns_enabled                  = true"), "the lake is ADLS Gen2");
}

#[test]
fn no_secret_is_assigned_in_terraform_code_or_tfvars() {
    let mut files = Vec::new();
    let mut folders = vec![root().join("infrastructure")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path.file_name().is_some_and(|name| name != ".terraform") {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "tf" || ext == "tfvars" || ext == "hcl") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "found the Terraform files: {files:?}");
    // Attributes that carry secrets, and a Terraform-managed secret (its value would land in state).
    let forbidden = [
        "api_key =",
        "storage_access_key",
        "primary_access_key",
        "primary_connection_string",
        "client_secret",
        "password",
        "sas_token",
        "AccountKey=",
        "azurerm_key_vault_secret",
    ];
    for file in files {
        let text = read_text(&file).to_ascii_lowercase();
        for needle in forbidden {
            assert!(
                !text.contains(&needle.to_ascii_lowercase()),
                "{} assigns {needle:?}: secrets belong in Key Vault",
                file.display()
            );
        }
    }
}
