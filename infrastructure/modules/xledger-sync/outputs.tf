output "resource_group_name" {
  description = "The resource group holding everything."
  value       = azurerm_resource_group.this.name
}

output "function_app_name" {
  description = "The Function App to deploy the zip to (az functionapp deployment source config-zip -n ...)."
  value       = azurerm_function_app_flex_consumption.this.name
}

output "function_app_hostname" {
  description = "Host name of the admin endpoints (https://<hostname>/api/sync/status)."
  value       = azurerm_function_app_flex_consumption.this.default_hostname
}

output "lake_url" {
  description = "The lake as the app sees it (XLEDGER_LAKE)."
  value       = local.lake_url
}

output "lake_storage_account_name" {
  description = "The ADLS Gen2 account holding the lake container."
  value       = azurerm_storage_account.lake.name
}

output "lake_container_name" {
  description = "The lake container (xledger-<environment>)."
  value       = azurerm_storage_container.lake.name
}

output "key_vault_name" {
  description = "The Key Vault to store the Xledger API key in."
  value       = azurerm_key_vault.this.name
}

output "api_key_secret_name" {
  description = "The secret name the app reads the API key from."
  value       = var.api_key_secret_name
}

output "app_configuration_endpoint" {
  description = "The sync state store (XLEDGER_STATE)."
  value       = azurerm_app_configuration.state.endpoint
}

output "identity_client_id" {
  description = "Client id of the app's user-assigned identity."
  value       = azurerm_user_assigned_identity.app.client_id
}

output "identity_principal_id" {
  description = "Object id of the app's user-assigned identity (for extra role assignments)."
  value       = azurerm_user_assigned_identity.app.principal_id
}

output "application_insights_name" {
  description = "Application Insights resource holding the handler's logs."
  value       = azurerm_application_insights.this.name
}

output "application_insights_app_id" {
  description = "Application Insights app id (az monitor app-insights query --app <id>)."
  value       = azurerm_application_insights.this.app_id
}
