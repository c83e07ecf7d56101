# xledger-sync on Azure: a Flex Consumption Function App running the Rust custom handler, the
# ADLS Gen2 lake it writes, App Configuration holding the sync state, Key Vault holding the
# Xledger API key, Application Insights for logs, and one user-assigned identity with only the
# roles it needs. No secret passes through Terraform: the API key is stored in Key Vault by hand
# (docs/deploying.md) and the app reads it through a Key Vault reference.

data "azurerm_client_config" "current" {}

locals {
  resource_group_name = coalesce(var.resource_group_name, "rg-xledger-sync-${var.environment}")
  lake_container_name = "xledger-${var.environment}"
  # Storage account names: 3-24 lower-case letters and digits, globally unique.
  lake_account_name = "stxlsynclake${var.environment}${var.unique_suffix}"
  host_account_name = "stxlsyncfunc${var.environment}${var.unique_suffix}"
  # Versionless: the app picks up a rotated key within 24 hours (or at once on restart).
  api_key_reference = "@Microsoft.KeyVault(SecretUri=${azurerm_key_vault.this.vault_uri}secrets/${var.api_key_secret_name}/)"
  lake_url          = "abfss://${local.lake_container_name}@${azurerm_storage_account.lake.name}.dfs.core.windows.net/"
  tags              = merge({ application = "xledger-sync", environment = var.environment }, var.tags)
}

resource "azurerm_resource_group" "this" {
  name     = local.resource_group_name
  location = var.location
  tags     = local.tags
}

# One identity for the app, created before the app so that its roles exist when the host first
# starts (Key Vault references and identity-based host storage resolve at startup).
resource "azurerm_user_assigned_identity" "app" {
  name                = "id-xledger-sync-${var.environment}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  tags                = local.tags
}

# ---------------------------------------------------------------------------------------------
# The lake: ADLS Gen2 (hierarchical namespace), one container per environment.

resource "azurerm_storage_account" "lake" {
  name                            = local.lake_account_name
  resource_group_name             = azurerm_resource_group.this.name
  location                        = azurerm_resource_group.this.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = var.lake_replication_type
  is_hns_enabled                  = true
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  shared_access_key_enabled       = false
  allow_nested_items_to_be_public = false
  tags                            = local.tags

  blob_properties {
    delete_retention_policy {
      days = var.lake_soft_delete_days
    }
    container_delete_retention_policy {
      days = var.lake_soft_delete_days
    }
  }
}

resource "azurerm_storage_container" "lake" {
  name                  = local.lake_container_name
  storage_account_id    = azurerm_storage_account.lake.id
  container_access_type = "private"
}

# ---------------------------------------------------------------------------------------------
# Functions host storage (AzureWebJobsStorage: timer schedules and locks) and the deployment
# package container Flex Consumption runs from. Kept apart from the lake: the host needs
# Blob Data Owner here, which the lake must never grant.

resource "azurerm_storage_account" "host" {
  name                            = local.host_account_name
  resource_group_name             = azurerm_resource_group.this.name
  location                        = azurerm_resource_group.this.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  shared_access_key_enabled       = false
  allow_nested_items_to_be_public = false
  tags                            = local.tags
}

resource "azurerm_storage_container" "package" {
  name                  = "app-package"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"
}

# ---------------------------------------------------------------------------------------------
# Sync state, secrets, monitoring.

resource "azurerm_app_configuration" "state" {
  name                     = "appcs-xlsync-${var.environment}-${var.unique_suffix}"
  resource_group_name      = azurerm_resource_group.this.name
  location                 = azurerm_resource_group.this.location
  sku                      = var.app_configuration_sku
  local_auth_enabled       = false # Entra ID only: no connection string exists to leak.
  purge_protection_enabled = var.app_configuration_sku == "free" ? false : var.purge_protection_enabled
  tags                     = local.tags
}

resource "azurerm_key_vault" "this" {
  name                       = "kv-xlsync-${var.environment}-${var.unique_suffix}"
  resource_group_name        = azurerm_resource_group.this.name
  location                   = azurerm_resource_group.this.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  rbac_authorization_enabled = true
  purge_protection_enabled   = var.purge_protection_enabled
  soft_delete_retention_days = var.soft_delete_retention_days
  tags                       = local.tags
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = "log-xledger-sync-${var.environment}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

resource "azurerm_application_insights" "this" {
  name                = "appi-xledger-sync-${var.environment}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  workspace_id        = azurerm_log_analytics_workspace.this.id
  application_type    = "other"
  tags                = local.tags
}

# ---------------------------------------------------------------------------------------------
# Least-privilege roles of the app identity.

resource "azurerm_role_assignment" "lake_data" {
  # The lake container only: read/write/delete blobs there, nothing else in the account.
  scope                = "${azurerm_storage_account.lake.id}/blobServices/default/containers/${azurerm_storage_container.lake.name}"
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "host_storage" {
  # Identity-based AzureWebJobsStorage needs Blob Data Owner (blob leases for timer locks); the
  # same account holds the deployment package the platform reads with this identity.
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "state" {
  # Data-plane read/write of key-values; Contributor/Owner would not grant data access.
  scope                = azurerm_app_configuration.state.id
  role_definition_name = "App Configuration Data Owner"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "api_key_reader" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "api_key_officers" {
  for_each             = toset(var.secret_officer_principal_ids)
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = each.value
}

# ---------------------------------------------------------------------------------------------
# The Function App: Flex Consumption, custom handler runtime.

resource "azurerm_service_plan" "this" {
  name                = "asp-xledger-sync-${var.environment}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags
}

resource "azurerm_function_app_flex_consumption" "this" {
  name                = "func-xledger-sync-${var.environment}-${var.unique_suffix}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  service_plan_id     = azurerm_service_plan.this.id

  runtime_name    = "custom"
  runtime_version = "1.0"

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.host.primary_blob_endpoint}${azurerm_storage_container.package.name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.app.id

  instance_memory_in_mb  = var.instance_memory_in_mb
  maximum_instance_count = var.maximum_instance_count

  https_only                                     = true
  webdeploy_publish_basic_authentication_enabled = false

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.app.id]
  }
  key_vault_reference_identity_id = azurerm_user_assigned_identity.app.id

  site_config {
    application_insights_connection_string = azurerm_application_insights.this.connection_string
  }

  app_settings = {
    # Identity-based host storage. Set explicitly: with a user-assigned identity the provider
    # does not write a connection string (terraform-provider-azurerm issues 29693 and 29149).
    AzureWebJobsStorage__accountName = azurerm_storage_account.host.name
    AzureWebJobsStorage__credential  = "managedidentity"
    AzureWebJobsStorage__clientId    = azurerm_user_assigned_identity.app.client_id
    # The identity the lake and state clients use (managed identity with this client id).
    AZURE_CLIENT_ID = azurerm_user_assigned_identity.app.client_id

    XLEDGER_API_KEY         = local.api_key_reference
    XLEDGER_ENDPOINT        = var.xledger_endpoint
    XLEDGER_LAKE            = local.lake_url
    XLEDGER_STATE           = azurerm_app_configuration.state.endpoint
    XLEDGER_DEADLINE_MARGIN = var.deadline_margin
    SYNC_SCHEDULE           = var.sync_schedule
    SYNC_ENTITIES           = join(",", var.sync_entities)
    RUST_LOG                = var.log_filter
  }

  tags = local.tags

  # The host reads storage and the Key Vault reference with these roles at first start.
  depends_on = [
    azurerm_role_assignment.host_storage,
    azurerm_role_assignment.api_key_reader,
    azurerm_role_assignment.lake_data,
    azurerm_role_assignment.state,
  ]
}
