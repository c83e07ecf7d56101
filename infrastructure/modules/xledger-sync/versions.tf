terraform {
  required_version = ">= 1.9"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.42 is the first release that accepts runtime_name = "custom" on Flex Consumption and
      # rbac_authorization_enabled on Key Vault; 5.x keeps both.
      version = ">= 4.42, < 6.0"
    }
  }
}
