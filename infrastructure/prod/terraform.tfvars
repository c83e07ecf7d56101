# prod: non-secret settings only. The Xledger API key lives in Key Vault (docs/deploying.md).
location                 = "swedencentral"
unique_suffix            = "dd01"
xledger_endpoint         = "https://www.xledger.net/graphql"
sync_schedule            = "0 5 * * * *"
sync_entities            = []
lake_replication_type    = "ZRS"
purge_protection_enabled = true
tags = {
  owner = "data-platform"
}
