# Where this environment's Terraform state lives (created once, see docs/deploying.md
# "Remote state"). No secrets here: access is by Entra ID (use_azuread_auth in main.tf).
resource_group_name  = "rg-xledger-sync-tfstate"
storage_account_name = "stxlsynctfstate"
container_name       = "tfstate"
key                  = "xledger-sync/prod.tfstate"
