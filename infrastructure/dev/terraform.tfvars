# dev: non-secret settings only. The Xledger API key lives in Key Vault (docs/deploying.md).
location      = "swedencentral"
unique_suffix = "dd01"
# Demo API keys expire after two weeks, so dev reads production with its own key, as before.
xledger_endpoint         = "https://www.xledger.net/graphql"
sync_schedule            = "0 5 * * * *"
sync_entities            = []
lake_replication_type    = "LRS"
purge_protection_enabled = false
tags = {
  owner = "data-platform"
}
