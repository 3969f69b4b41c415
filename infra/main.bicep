// Pega Exchange Sync: everything one deployment needs in one resource group.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.json
//
// Resources: a user-assigned identity; storage (shared keys off) with the deployment container,
// the work queues and the state tables; Key Vault (RBAC, soft delete, purge protection) for the
// Pega and Graph credentials; Log Analytics + Application Insights (Entra-only ingestion); the
// data-plane role assignments; a Flex Consumption (FC1) Python 3.11 function app with a capped
// instance count; the operations workbook. The Entra app registrations and the Exchange mailbox
// scoping are tenant-level steps outside this template: docs/deploy.md.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement

@description('Azure region (one that offers Flex Consumption).')
param location string = resourceGroup().location

@description('Short name for the service, lower-case letters and digits only (it is part of the storage account name).')
@minLength(2)
@maxLength(8)
param baseName string = 'pes'

@description('Environment name, e.g. prod or test: lower-case letters and digits only (it is part of the storage account name).')
@minLength(2)
@maxLength(8)
param environmentName string = 'prod'

@description('Extra tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------
// Scale: the cap protects Graph (per-mailbox concurrency and tenant throttling) from a backlog.

@description('Maximum instances per function group (queue-triggered functions scale one group each).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Zone-redundant plan (only where Flex Consumption offers it).')
param zoneRedundant bool = false

@description('Storage replication.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_ZRS'

@description('Days Log Analytics and Application Insights keep data.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// Names the code uses: shared/queues/names.py (ALL and their -poison twins) and
// shared/storage/tables.py (TableNames().all()). tests/infra cross-checks these lists.
@description('Queues the app uses (with the -poison twins the Functions host writes to).')
param queueNames array = [
  'delta-work'
  'delta-work-poison'
  'outbound-ops'
  'outbound-ops-poison'
  'subscription-work'
  'subscription-work-poison'
  'insight-work'
  'insight-work-poison'
]

@description('State tables the app uses.')
param tableNames array = [
  'pesmailboxes'
  'peslinks'
  'pescursors'
  'pessubscriptions'
  'pesoperations'
  'peshealth'
  'pesdeadletters'
  'pescoalesce'
  'pesfailures'
  'pesclaims'
  'pesroundlease'
  'pesgraphslots'
]

// ---------------------------------------------------------------------------------------------
// Microsoft Graph (the sync service's Entra app registration, docs/deploy.md)

@description('Tenant of the Exchange Online mailboxes.')
param graphTenantId string = tenant().tenantId

@description('Application (client) id of the sync service\'s app registration.')
param graphClientId string

@description('How the app proves its identity to Entra ID. managed_identity: the user-assigned identity is a federated credential of the app registration (no secret anywhere; recommended). secret: a client secret kept in Key Vault. A certificate needs a file path, which Flex Consumption cannot provide from Key Vault; see docs/deploy.md.')
@allowed([
  'managed_identity'
  'secret'
])
param graphCredentialKind string = 'managed_identity'

@description('Client secret of the app registration when graphCredentialKind is secret; empty keeps the one in Key Vault.')
@secure()
param graphClientSecret string = ''

@description('Graph endpoint (change only for a national cloud).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

// ---------------------------------------------------------------------------------------------
// Exchange Server on-premises over EWS (docs/deploy.md "On-premises Exchange"); empty ewsUrl: none

@description('EWS endpoint of the on-premises organization, e.g. https://mail.contoso.com/EWS/Exchange.asmx; empty: Exchange Online only.')
param ewsUrl string = ''

@description('EWS authentication: basic or ntlm (service account with ApplicationImpersonation), oauth (hybrid modern auth).')
@allowed([
  'basic'
  'ntlm'
  'oauth'
])
param ewsAuthType string = 'basic'

@description('EWS service account (DOMAIN\\user or UPN).')
param ewsUsername string = ''

@description('EWS service account password. Empty keeps the one in Key Vault.')
@secure()
param ewsPassword string = ''

@description('Hybrid modern auth (ewsAuthType oauth): tenant and app registration.')
param ewsOauthTenantId string = ''
param ewsOauthClientId string = ''

@description('Hybrid modern auth client secret. Empty keeps the one in Key Vault.')
@secure()
param ewsOauthClientSecret string = ''

@description('Exchange build of the on-premises servers: 15.1 (2016) or 15.2 (2019 / SE).')
param ewsServerVersion string = '15.2'

// ---------------------------------------------------------------------------------------------
// Pega (docs/pega-setup.md)

@description('Base URL of the Pega application, e.g. https://pega.example.com/prweb/app/sales.')
param pegaBaseUrl string

@description('OAuth 2.0 client id registered in Pega for the DX API.')
param pegaClientId string

@description('OAuth 2.0 client secret for the DX API; empty keeps the one in Key Vault.')
@secure()
param pegaClientSecret string = ''

@description('Operator used for the SA API v1 (Basic).')
param pegaUsername string = ''

@description('Password of that operator; empty keeps the one in Key Vault.')
@secure()
param pegaPassword string = ''

@description('Path of a field-mapping file inside the deployed package; empty for the built-in mapping.')
param pegaMappingFile string = ''

@description('OAuth 2.0 token endpoint of the DX API; empty for {pegaBaseUrl}/prweb/PRRestService/oauth2/v1/token.')
param pegaTokenUrl string = ''

@description('DX API v2 root (differs when the application is reached through an alias, e.g. /prweb/app/SalesAutomation/api/application/v2).')
param pegaDxApiPath string = '/prweb/api/application/v2'

@description('SA API v1 root.')
param pegaSaApiPath string = '/prweb/api/v1'

@description('Pega adapter: sync-service (the Pega-side contract, recommended for Sales Automation 8.x) or dx-v2 (Constellation apps).')
@allowed([
  'sync-service'
  'dx-v2'
])
param pegaAdapter string = 'sync-service'

@description('Root of the sync-service contract Service REST rules.')
param pegaServicePath string = '/prweb/api/ExchangeSync/v1'

// ---------------------------------------------------------------------------------------------
// Our HTTP API, called by Pega's Connect-REST rules with an Entra token

@description('Tenant that issues the tokens Pega presents.')
param apiTenantId string = tenant().tenantId

@description('Application ID URI of our API (the token audience).')
param apiAudience string = 'api://pega-exchange-sync'

@description('App role a caller must hold.')
param apiRequiredRole string = 'Sync.ReadWrite'

@description('Comma-separated client ids allowed to call (Pega\'s Connect-REST app registration); empty admits any caller holding the role.')
param apiAllowedClientIds string = ''

@description('Comma-separated extra accepted audiences, e.g. the API app registration\'s client id.')
param apiExtraAudiences string = ''

// ---------------------------------------------------------------------------------------------
// Failure notices and the rest

@description('Mailbox that sends failure and recovery notices (Graph sendMail as this user).')
param failureNoticeSender string = ''

@description('Address that receives a copy of every failure notice.')
param failureNoticeAdmin string = ''

@description('Public base URL Graph posts change notifications to; empty derives https://<app>.azurewebsites.net/api.')
param notificationUrlBase string = ''

@description('Function key Graph must present on change notifications (generate one, e.g. `openssl rand -base64 32`, and register it on the app after deployment: docs/deploy.md). Empty keeps the one in Key Vault.')
@secure()
param notificationUrlKey string = ''

@description('Any app setting to set or override, e.g. {"SYNC_PAST_DAYS": "60"}. Applied last.')
@description('Azure AI Language endpoint for sentiment (empty: the local analyzer). The managed identity needs the Cognitive Services User role on it.')
param insightsLanguageEndpoint string = ''

param settingOverrides object = {}

@description('Object id of the operator (user or group) who manages the Key Vault secrets; empty for none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// ---------------------------------------------------------------------------------------------
// Names

var token = toLower(uniqueString(subscription().id, resourceGroup().id, baseName, environmentName))
var allTags = union(tags, {
  service: 'pega-exchange-sync'
  environment: environmentName
})
var identityName = 'id-${baseName}-${environmentName}'
var storageAccountName = take('st${baseName}${environmentName}${token}', 24)
var keyVaultName = take('kv-${baseName}-${environmentName}-${token}', 24)
var logAnalyticsName = 'log-${baseName}-${environmentName}'
var appInsightsName = 'appi-${baseName}-${environmentName}'
var planName = 'plan-${baseName}-${environmentName}'
var functionAppName = 'func-${baseName}-${environmentName}-${token}'
var deploymentContainerName = 'app-package'
var effectiveNotificationUrlBase = empty(notificationUrlBase) ? 'https://${functionAppName}.azurewebsites.net/api' : notificationUrlBase

// ---------------------------------------------------------------------------------------------
// Resources

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: identityName
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    location: location
    tags: allTags
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    tags: allTags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
    tableNames: tableNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: allTags
    pegaClientSecret: pegaClientSecret
    pegaPassword: pegaPassword
    graphClientSecret: (graphCredentialKind == 'secret') ? graphClientSecret : ''
    notificationUrlKey: notificationUrlKey
    ewsPassword: ewsPassword
    ewsOauthClientSecret: ewsOauthClientSecret
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

// Every setting shared/config.py reads, with the code's defaults where the deployment has no
// opinion (tests/infra/test_settings_coverage.py keeps this list complete). Values are strings.
// Host storage and telemetry settings are added by modules/functionapp.bicep.
var appSettings = {
  APP_MODE: 'real'
  STORAGE_TIMEOUT_SECONDS: '10'
  STORAGE_HTTP_PROXY: ''

  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: graphClientId
  GRAPH_CREDENTIAL_KIND: graphCredentialKind
  GRAPH_CLIENT_SECRET: (graphCredentialKind == 'secret') ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.graphClientSecretUri})' : ''
  GRAPH_CERTIFICATE_PATH: ''
  GRAPH_CERTIFICATE_PASSWORD: ''
  GRAPH_MANAGED_IDENTITY_CLIENT_ID: (graphCredentialKind == 'managed_identity') ? identity.outputs.clientId : ''
  GRAPH_AUTHORITY_HOST: environment().authentication.loginEndpoint
  GRAPH_BASE_URL: graphBaseUrl
  GRAPH_TIMEOUT_SECONDS: '30'
  GRAPH_MAX_CONCURRENCY_PER_MAILBOX: '4'
  GRAPH_SHARED_MAILBOX_SLOTS: 'true'

  EWS_URL: ewsUrl
  EWS_AUTH_TYPE: ewsAuthType
  EWS_USERNAME: ewsUsername
  EWS_PASSWORD: empty(ewsUrl) || ewsAuthType == 'oauth' ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.ewsPasswordUri})'
  EWS_OAUTH_TENANT_ID: ewsOauthTenantId
  EWS_OAUTH_CLIENT_ID: ewsOauthClientId
  EWS_OAUTH_CLIENT_SECRET: ewsAuthType == 'oauth' ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.ewsOauthClientSecretUri})' : ''
  EWS_SERVER_VERSION: ewsServerVersion
  EWS_TIMEOUT_SECONDS: '30'
  EWS_MAX_THREADS: '8'
  EWS_MAX_CONNECTIONS_PER_MAILBOX: '4'

  PEGA_BASE_URL: pegaBaseUrl
  PEGA_CLIENT_ID: pegaClientId
  PEGA_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.pegaClientSecretUri})'
  PEGA_USERNAME: pegaUsername
  PEGA_PASSWORD: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.pegaPasswordUri})'
  PEGA_MAPPING_FILE: pegaMappingFile
  PEGA_TIMEOUT_SECONDS: '30'
  PEGA_TOKEN_URL: pegaTokenUrl
  PEGA_TOKEN_REFRESH_SKEW_SECONDS: '60'
  PEGA_DX_API_PATH: pegaDxApiPath
  PEGA_SA_API_PATH: pegaSaApiPath
  PEGA_DATA_VIEW_PAGE_SIZE: '500'
  PEGA_ADAPTER: pegaAdapter
  PEGA_SERVICE_PATH: pegaServicePath

  API_TENANT_ID: apiTenantId
  API_AUDIENCE: apiAudience
  API_REQUIRED_ROLE: apiRequiredRole
  API_OPENID_CONFIG_URL: '${environment().authentication.loginEndpoint}${apiTenantId}/v2.0/.well-known/openid-configuration'
  API_MAX_BODY_BYTES: '10485760'
  API_ISSUER: ''
  API_JWKS_URL: ''
  API_EXTRA_AUDIENCES: apiExtraAudiences
  API_ALLOWED_CLIENT_IDS: apiAllowedClientIds
  API_LEEWAY_SECONDS: '60'
  API_JWKS_CACHE_SECONDS: '3600'
  API_HTTP_TIMEOUT_SECONDS: '10'

  SYNC_PAST_DAYS: '30'
  SYNC_FUTURE_DAYS: '180'
  SYNC_BATCH_SIZE: '50'
  SYNC_NOTIFICATION_FREQUENCY_MINUTES: '30'
  SYNC_EMAIL_ENABLED: 'true'
  SYNC_CALENDAR_ENABLED: 'true'
  SYNC_CONTACTS_ENABLED: 'true'
  SYNC_PUSH_ENABLED: 'true'
  SYNC_PRIVATE_POLICY: 'skip'
  SYNC_CONTACT_CATEGORY: 'PegaSASync'
  SYNC_CONTACT_FOLDER: ''
  SYNC_CONTACT_CLOSE_ACTION: 'clear_category'
  SYNC_MAIL_FOLDERS: 'inbox_tree'
  SYNC_CONFLICT_POLICY: 'newer'
  SYNC_DELETE_SAFETY_SHARE: '0.5'
  SYNC_NOTIFICATION_URL_BASE: effectiveNotificationUrlBase
  SYNC_NOTIFICATION_URL_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.notificationUrlKeyUri})'
  SYNC_POLL_INTERVAL_MINUTES: '15'
  SYNC_SUBSCRIPTION_RENEW_BEFORE_MINUTES: '2880'
  SYNC_LEASE_SECONDS: '30'
  SYNC_PEGA_CONCURRENCY: '16'
  SYNC_FAILURE_NOTICE_SENDER: failureNoticeSender
  SYNC_FAILURE_NOTICE_ADMIN: failureNoticeAdmin

  INSIGHTS_ENABLED: 'true'
  INSIGHTS_DEFERRED: 'auto'
  INSIGHTS_RULES_FILE: ''
  INSIGHTS_LANGUAGE: 'en'
  INSIGHTS_ANALYZER: 'model'
  INSIGHTS_SENTIMENT_MODEL: 'mpnet'
  INSIGHTS_WORKER_PROCESSES: '1'
  INSIGHTS_WORKER_NICE: '10'
  INSIGHTS_AZURE_LANGUAGE_ENDPOINT: insightsLanguageEndpoint
  INSIGHTS_AZURE_LANGUAGE_KEY: ''
  INSIGHTS_AZURE_LANGUAGE_USE_MANAGED_IDENTITY: empty(insightsLanguageEndpoint) ? 'false' : 'true'
  INSIGHTS_AZURE_LANGUAGE_CLIENT_ID: empty(insightsLanguageEndpoint) ? '' : identity.outputs.clientId
  INSIGHTS_AZURE_LANGUAGE_TIMEOUT_SECONDS: '30'
  INSIGHTS_ATTACHMENT_MAX_BYTES: '10485760'
  INSIGHTS_ATTACHMENT_TIMEOUT_SECONDS: '5'
  INSIGHTS_ATTACHMENT_MAX_CHARS: '100000'
  INSIGHTS_ATTACHMENT_MAX_PDF_PAGES: '50'
  INSIGHTS_ATTACHMENT_MEMORY_LIMIT_MB: '1024'
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    planName: planName
    name: functionAppName
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: union(appSettings, settingOverrides)
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    zoneRedundant: zoneRedundant
  }
  // The app starts resolving Key Vault references and reading storage as soon as it exists.
  dependsOn: [
    roles
  ]
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    displayName: 'Pega Exchange Sync (${environmentName})'
    location: location
    tags: allTags
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.defaultHostName
output notificationUrlBase string = effectiveNotificationUrlBase
output identityClientId string = identity.outputs.clientId
output identityPrincipalId string = identity.outputs.principalId
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
output appInsightsName string = monitoring.outputs.appInsightsName
output workbookId string = workbook.outputs.id
