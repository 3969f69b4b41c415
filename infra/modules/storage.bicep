// The storage account of the Functions host and of the sync's own state: the deployment package
// container (Flex Consumption), the work queues and the state tables. Shared keys are disabled:
// every client (host, app code, deployment) authenticates with Entra ID.

@description('Storage account name: 3-24 lower-case letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Replication. ZRS keeps the queues and tables up through a zone outage; use LRS only where ZRS is not offered.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_ZRS'

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Queues to create (names from shared/queues/names.py, each with its -poison twin).')
param queueNames array

@description('Tables to create (names from shared/storage/tables.py TableNames).')
param tableNames array

@description('Days a deleted blob (the deployment package) can be restored.')
@minValue(1)
@maxValue(365)
param blobSoftDeleteDays int = 7

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: No VNet in this template, so the Flex Consumption app reaches storage over the public endpoint from non-fixed addresses; shared keys are disabled and every request needs an Entra token with a data role (docs/deploy.md lists the private-endpoint hardening).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public network access is required without VNet integration; anonymous blob access and shared-key access are both disabled.
  // checkov:skip=CKV_AZURE_206: Replication is the skuName parameter (default Standard_ZRS, GRS/GZRS allowed); the sync state can be rebuilt from Graph delta and Pega, and this template has no cross-region failover for the app that geo-replication would serve.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    // Flex Consumption without VNet integration reaches its storage over the public endpoint;
    // with shared keys disabled, only Entra-authorized principals with a data role get in.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: blobSoftDeleteDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
