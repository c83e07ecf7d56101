//! The deployment files agree with each other: Terraform is formatted, `host.json` starts the
//! executable `cargo xtask package` ships, each environment has its own state and container, and
//! no secret is in Terraform code. (That `functions/` holds exactly the handler's catalog is
//! sync-runner's `tests/functions.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

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
