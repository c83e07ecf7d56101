# The module validates every value; these are the settings an environment chooses.

variable "location" {
  description = "Azure region (must offer Flex Consumption)."
  type        = string
}

variable "unique_suffix" {
  description = "3-6 lower-case letters or digits making global names unique; never change it once deployed."
  type        = string
}

variable "xledger_endpoint" {
  description = "Xledger GraphQL endpoint."
  type        = string
  default     = "https://www.xledger.net/graphql"
}

variable "sync_schedule" {
  description = "NCRONTAB schedule of the sync timer (six fields, UTC)."
  type        = string
  default     = "0 5 * * * *"
}

variable "sync_entities" {
  description = "Entities the timer syncs; empty = all."
  type        = list(string)
  default     = []
}

variable "lake_replication_type" {
  description = "Replication of the lake storage account."
  type        = string
  default     = "ZRS"
}

variable "purge_protection_enabled" {
  description = "Purge protection on Key Vault and App Configuration."
  type        = bool
  default     = false
}

variable "secret_officer_principal_ids" {
  description = "Entra object ids allowed to set and rotate the API key secret."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
