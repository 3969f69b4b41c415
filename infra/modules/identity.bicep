// The one identity the function app uses for everything: host storage, the state tables and
// queues, Key Vault references, Application Insights ingestion and (optionally) Graph through a
// federated credential. User-assigned so that its role assignments exist before the app and
// survive a re-created app.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
