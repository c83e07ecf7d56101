# The prod environment: the xledger-sync module with prod's settings (terraform.tfvars).
# State lives in Azure Storage; the backend's location is in backend.hcl:
#   terraform init -backend-config=backend.hcl

terraform {
  required_version = ">= 1.9"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.42, < 6.0"
    }
  }

  backend "azurerm" {
    # resource_group_name, storage_account_name, container_name and key come from backend.hcl.
    use_azuread_auth = true
  }
}

provider "azurerm" {
  # The subscription comes from ARM_SUBSCRIPTION_ID (or az account set): not kept in code.
  features {}
  # The storage accounts refuse shared keys: the provider must use Entra ID for data-plane calls.
  storage_use_azuread = true
}

module "xledger_sync" {
  source = "../modules/xledger-sync"

  environment                  = "prod"
  location                     = var.location
  unique_suffix                = var.unique_suffix
  xledger_endpoint             = var.xledger_endpoint
  sync_schedule                = var.sync_schedule
  sync_entities                = var.sync_entities
  lake_replication_type        = var.lake_replication_type
  purge_protection_enabled     = var.purge_protection_enabled
  secret_officer_principal_ids = var.secret_officer_principal_ids
  tags                         = var.tags
}
