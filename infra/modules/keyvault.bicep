// Key Vault for the credentials the app cannot avoid: Pega's OAuth client secret and SA API
// password, the function key Graph presents on change notifications, and the Graph client secret
// when the Graph credential kind is `secret`. RBAC
// authorization only (no access policies), soft delete and purge protection on. App settings
// reference the secrets with @Microsoft.KeyVault(SecretUri=...) and the user-assigned identity.
//
// A secret is written only when its value is passed in: a redeploy without the value keeps the
// secret already in the vault (set or rotate it with `az keyvault secret set` instead).

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Pega OAuth 2.0 client secret (DX API v2). Empty keeps the current secret.')
@secure()
param pegaClientSecret string = ''

@description('Pega SA API v1 (Basic) password. Empty keeps the current secret.')
@secure()
param pegaPassword string = ''

@description('Graph client secret (only when the Graph credential kind is `secret`). Empty keeps the current secret.')
@secure()
param graphClientSecret string = ''

@description('EWS service account password (Exchange on-premises; docs/deploy.md). Empty keeps the current secret.')
@secure()
param ewsPassword string = ''

@description('Client secret for EWS with hybrid modern authentication (EWS_AUTH_TYPE oauth). Empty keeps the current secret.')
@secure()
param ewsOauthClientSecret string = ''

@description('Function key Graph presents on change notifications (?code= on the notification URL). Empty keeps the current secret.')
@secure()
param notificationUrlKey string = ''

@description('Secrets written by this deployment expire this many days after it; set it to the real credential lifetime so Key Vault raises near-expiry events in time.')
@minValue(1)
@maxValue(730)
param secretLifetimeDays int = 365

@description('Deployment time; the secrets\' expiry counts from it. Leave the default.')
param deploymentTime string = utcNow()

var secretExpiry = dateTimeToEpoch(dateTimeAdd(deploymentTime, 'P${secretLifetimeDays}D'))

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: No VNet in this template: Flex Consumption resolves Key Vault references from non-fixed outbound addresses, so a firewall allow-list cannot be written; access is RBAC-only (no access policies).
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109; private endpoint + VNet integration is the hardening path in docs/deploy.md.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Flex Consumption without VNet integration resolves Key Vault references over the public
    // endpoint and has no fixed outbound addresses to allow-list; access is Entra + RBAC only.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource pegaClientSecretEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(pegaClientSecret)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov's bicep parser nests a conditional resource's body one level deeper and misses attributes.exp, which is set below (tests/infra/test_bicep_structure.py asserts it).
  // checkov:skip=CKV_AZURE_114: False positive for the same reason: contentType is set below (asserted in tests/infra).
  parent: vault
  name: 'pega-client-secret'
  properties: {
    value: pegaClientSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

resource pegaPasswordEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(pegaPassword)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov's bicep parser nests a conditional resource's body one level deeper and misses attributes.exp, which is set below (tests/infra/test_bicep_structure.py asserts it).
  // checkov:skip=CKV_AZURE_114: False positive for the same reason: contentType is set below (asserted in tests/infra).
  parent: vault
  name: 'pega-password'
  properties: {
    value: pegaPassword
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

resource graphClientSecretEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(graphClientSecret)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov's bicep parser nests a conditional resource's body one level deeper and misses attributes.exp, which is set below (tests/infra/test_bicep_structure.py asserts it).
  // checkov:skip=CKV_AZURE_114: False positive for the same reason: contentType is set below (asserted in tests/infra).
  parent: vault
  name: 'graph-client-secret'
  properties: {
    value: graphClientSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

resource ewsPasswordEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(ewsPassword)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov's bicep parser nests a conditional resource's body one level deeper and misses attributes.exp, which is set below (tests/infra/test_bicep_structure.py asserts it).
  // checkov:skip=CKV_AZURE_114: False positive for the same reason: contentType is set below (asserted in tests/infra).
  parent: vault
  name: 'ews-password'
  properties: {
    value: ewsPassword
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

resource ewsOauthClientSecretEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(ewsOauthClientSecret)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov's bicep parser nests a conditional resource's body one level deeper and misses attributes.exp, which is set below (tests/infra/test_bicep_structure.py asserts it).
  // checkov:skip=CKV_AZURE_114: False positive for the same reason: contentType is set below (asserted in tests/infra).
  parent: vault
  name: 'ews-oauth-client-secret'
  properties: {
    value: ewsOauthClientSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

resource notificationUrlKeyEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(notificationUrlKey)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov's bicep parser nests a conditional resource's body one level deeper and misses attributes.exp, which is set below (tests/infra/test_bicep_structure.py asserts it).
  // checkov:skip=CKV_AZURE_114: False positive for the same reason: contentType is set below (asserted in tests/infra).
  parent: vault
  name: 'graph-notification-key'
  properties: {
    value: notificationUrlKey
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

output id string = vault.id
output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output pegaClientSecretUri string = '${vault.properties.vaultUri}secrets/pega-client-secret'
output pegaPasswordUri string = '${vault.properties.vaultUri}secrets/pega-password'
output graphClientSecretUri string = '${vault.properties.vaultUri}secrets/graph-client-secret'
output ewsPasswordUri string = '${vault.properties.vaultUri}secrets/ews-password'
output ewsOauthClientSecretUri string = '${vault.properties.vaultUri}secrets/ews-oauth-client-secret'
output notificationUrlKeyUri string = '${vault.properties.vaultUri}secrets/graph-notification-key'
