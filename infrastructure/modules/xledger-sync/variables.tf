variable "environment" {
  description = "Environment name; also names the lake container (xledger-<environment>)."
  type        = string

  validation {
    condition     = contains(["dev", "test", "prod"], var.environment)
    error_message = "environment must be dev, test or prod."
  }
}

variable "location" {
  description = "Azure region of every resource. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location is a region name such as swedencentral or northeurope (lower case, no spaces)."
  }
}

variable "resource_group_name" {
  description = "Resource group the module creates; defaults to rg-xledger-sync-<environment>."
  type        = string
  default     = null

  validation {
    condition     = var.resource_group_name == null || can(regex("^[-\\w._()]{1,90}$", var.resource_group_name))
    error_message = "resource_group_name: 1-90 letters, digits, '-', '_', '.', '(' or ')'."
  }
}

variable "unique_suffix" {
  description = "3-6 lower-case letters or digits making the globally unique names (storage accounts, Key Vault, App Configuration, Function App) unique. Pick it once per environment and never change it: it is part of resource names."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,6}$", var.unique_suffix))
    error_message = "unique_suffix must be 3-6 lower-case letters or digits."
  }
}

variable "xledger_endpoint" {
  description = "Xledger GraphQL endpoint (XLEDGER_ENDPOINT). The demo endpoint suits dev; production is the default."
  type        = string
  default     = "https://www.xledger.net/graphql"

  validation {
    condition     = startswith(var.xledger_endpoint, "https://")
    error_message = "xledger_endpoint must be an https:// URL."
  }
}

variable "api_key_secret_name" {
  description = "Name of the Key Vault secret holding the Xledger API key. Terraform never sets its value: store it with az keyvault secret set (docs/deploying.md)."
  type        = string
  default     = "xledger-api-key"

  validation {
    condition     = can(regex("^[0-9A-Za-z-]{1,127}$", var.api_key_secret_name))
    error_message = "api_key_secret_name: 1-127 letters, digits or '-'."
  }
}

variable "sync_schedule" {
  description = "NCRONTAB schedule of the sync timer, six fields with seconds, UTC (SYNC_SCHEDULE). Default: five past every hour."
  type        = string
  default     = "0 5 * * * *"

  validation {
    condition     = length(regexall("\\S+", var.sync_schedule)) == 6
    error_message = "sync_schedule must have six fields (second minute hour day month weekday), e.g. \"0 5 * * * *\"."
  }
}

variable "sync_entities" {
  description = "Entities the timer syncs (SYNC_ENTITIES); empty = all eight. One timer for all keeps an idle hour at one Xledger request."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for entity in var.sync_entities : contains([
        "apTransactions", "arTransactions", "customers", "employees", "projects", "suppliers", "timesheets", "transactions",
      ], entity)
    ])
    error_message = "sync_entities may only name apTransactions, arTransactions, customers, employees, projects, suppliers, timesheets or transactions."
  }
}

variable "deadline_margin" {
  description = "Time a pass keeps in reserve before the function timeout to commit its last file and answer the host (XLEDGER_DEADLINE_MARGIN, humantime)."
  type        = string
  default     = "2m"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.deadline_margin))
    error_message = "deadline_margin is a number of seconds or minutes such as 90s or 2m."
  }
}

variable "log_filter" {
  description = "RUST_LOG filter of the handler's JSON logs."
  type        = string
  default     = "info"

  validation {
    condition     = length(trimspace(var.log_filter)) > 0
    error_message = "log_filter must not be empty (e.g. info, or info,sync_runner=debug)."
  }
}

variable "lake_replication_type" {
  description = "Replication of the lake storage account."
  type        = string
  default     = "ZRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.lake_replication_type)
    error_message = "lake_replication_type must be LRS, ZRS, GRS, RAGRS, GZRS or RAGZRS."
  }
}

variable "lake_soft_delete_days" {
  description = "Days deleted lake files and containers stay recoverable (a wipe can be undone within this window)."
  type        = number
  default     = 14

  validation {
    condition     = var.lake_soft_delete_days >= 1 && var.lake_soft_delete_days <= 365
    error_message = "lake_soft_delete_days must be between 1 and 365."
  }
}

variable "instance_memory_in_mb" {
  description = "Flex Consumption instance size."
  type        = number
  default     = 2048

  validation {
    condition     = contains([2048, 4096], var.instance_memory_in_mb)
    error_message = "instance_memory_in_mb must be 2048 or 4096."
  }
}

variable "maximum_instance_count" {
  description = "Flex Consumption scale-out limit. Timers run on one instance; the limit caps admin HTTP bursts."
  type        = number
  default     = 40

  validation {
    condition     = var.maximum_instance_count >= 1 && var.maximum_instance_count <= 1000
    error_message = "maximum_instance_count must be between 1 and 1000."
  }
}

variable "app_configuration_sku" {
  description = "App Configuration tier holding the sync state. The free tier's 1,000 requests a day are too few for hourly passes over eight entities."
  type        = string
  default     = "standard"

  validation {
    condition     = contains(["free", "developer", "standard", "premium"], var.app_configuration_sku)
    error_message = "app_configuration_sku must be free, developer, standard or premium."
  }
}

variable "purge_protection_enabled" {
  description = "Purge protection on Key Vault and App Configuration (recommended for prod; once on, it cannot be turned off)."
  type        = bool
  default     = false
}

variable "soft_delete_retention_days" {
  description = "Days a deleted Key Vault and its secrets stay recoverable."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90
    error_message = "soft_delete_retention_days must be between 7 and 90."
  }
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace behind Application Insights."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "secret_officer_principal_ids" {
  description = "Object ids (users or groups) allowed to set and rotate the API key secret (Key Vault Secrets Officer)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.secret_officer_principal_ids : can(regex("^[0-9a-fA-F-]{36}$", id))])
    error_message = "secret_officer_principal_ids must be Entra object ids (GUIDs)."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
