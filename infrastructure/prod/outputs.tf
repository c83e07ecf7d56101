output "resource_group_name" {
  description = "The resource group holding everything."
  value       = module.xledger_sync.resource_group_name
}

output "function_app_name" {
  description = "The Function App to deploy the zip to."
  value       = module.xledger_sync.function_app_name
}

output "function_app_hostname" {
  description = "Host name of the admin endpoints."
  value       = module.xledger_sync.function_app_hostname
}

output "lake_url" {
  description = "The lake (XLEDGER_LAKE)."
  value       = module.xledger_sync.lake_url
}

output "key_vault_name" {
  description = "The Key Vault holding the Xledger API key."
  value       = module.xledger_sync.key_vault_name
}

output "api_key_secret_name" {
  description = "The secret the app reads the API key from."
  value       = module.xledger_sync.api_key_secret_name
}

output "app_configuration_endpoint" {
  description = "The sync state store (XLEDGER_STATE)."
  value       = module.xledger_sync.app_configuration_endpoint
}

output "application_insights_app_id" {
  description = "Application Insights app id for log queries."
  value       = module.xledger_sync.application_insights_app_id
}
