//! `functions/` holds exactly the functions the handler routes, each `function.json` declares the
//! trigger the handler expects, and Terraform sets every app setting they refer to.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sync_runner::serve::functions as catalog;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

#[test]
fn function_folders_are_the_handler_catalog() {
    let mut folders: Vec<String> = std::fs::read_dir(root().join("functions"))
        .expect("the functions folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.join("function.json").is_file())
        .map(|path| path.file_name().expect("a folder name").to_string_lossy().into_owned())
        .collect();
    folders.sort();
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
