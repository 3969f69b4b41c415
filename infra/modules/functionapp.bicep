// Flex Consumption (FC1) plan and the Python 3.11 function app. The app runs as the
// user-assigned identity: host storage is identity-based (no connection string, shared keys are
// off), the deployment package is pulled from a blob container with the same identity, Key Vault
// references resolve with it and telemetry is sent with it.

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the function app (its host name is <name>.azurewebsites.net).')
param name string

@description('Azure region (one that offers Flex Consumption: `az functionapp list-flexconsumption-locations`).')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Storage account name (host storage and the sync\'s queues and tables).')
param storageAccountName string

@description('Blob container URL that holds the deployment package.')
param deploymentContainerUrl string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('The app\'s own settings (everything shared/config.py reads).')
param appSettings object

@description('Cap on instances per function group. Every instance runs queue-triggered workers that call Graph; the cap keeps a large backlog from turning into a throttling storm. 40 is the lowest value most regions accept; some regions accept less.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread the plan over availability zones (only in regions where Flex Consumption supports it).')
param zoneRedundant bool = false

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is the zoneRedundant parameter: Flex Consumption offers it only in some regions, so the default (false) must deploy everywhere.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Microsoft Graph posts change notifications and Pega calls the API over the internet; callers are authenticated by the function key (Graph) and by Entra bearer tokens with the Sync.ReadWrite role (Pega).
  // checkov:skip=CKV_AZURE_17: Neither Graph webhooks nor Pega Connect-REST present client certificates; see CKV_AZURE_222 for how callers are authenticated.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero by design; work waits in storage queues, so no always-on failover instance is needed.
  // checkov:skip=CKV_AZURE_213: App Service health check (evicting unhealthy instances behind the front end) does not fit a scale-to-zero Flex app; GET /api/health is probed by the post-deploy checks in docs/deploy.md instead.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Without this, Key Vault references resolve with the system-assigned identity, which this
    // app does not have, and every reference stays unresolved.
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: []
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Host-level settings: identity-based AzureWebJobsStorage and Entra-authenticated telemetry.
// Flex Consumption takes the runtime from functionAppConfig and rejects FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE, so none of them appear here.
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${environment().suffixes.storage}'
  AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
  AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
}

// The whole collection is written on every deployment: a setting added by hand in the portal and
// missing here is removed by the next deployment.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: This is the appsettings collection, not authsettings; App Service Authentication would also reject Graph notifications (no bearer token), so the app validates Pega's Entra tokens itself (API_* settings).
  // checkov:skip=CKV_AZURE_63: Check meant for the web config resource; HTTP logs of a Flex app go to Application Insights (requests table), not App Service HTTP logging.
  // checkov:skip=CKV_AZURE_65: Check meant for the web config resource; detailed error pages are an App Service web server feature that a function app does not serve.
  // checkov:skip=CKV_AZURE_66: Check meant for the web config resource; failed request tracing is an IIS feature, not available on Linux Flex Consumption.
  // checkov:skip=CKV_AZURE_80: Check meant for the web config resource; the app runs Python 3.11 (functionAppConfig.runtime), no .NET Framework.
  // checkov:skip=CKV_AZURE_88: Check meant for the web config resource; Flex Consumption deploys from a blob container and does not use Azure Files content shares.
  // checkov:skip=CKV_AZURE_222: Check meant for the site resource; see the justification there.
  parent: site
  name: 'appsettings'
  properties: union(appSettings, platformSettings)
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
