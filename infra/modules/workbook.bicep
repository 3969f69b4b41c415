// The operations workbook (infra/workbook.json), bound to the Application Insights component so
// its KQL runs over that component's customMetrics, traces and dependencies.

@description('Display name shown in the portal.')
param displayName string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Resource id of the Application Insights component the queries run against.')
param appInsightsId string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // Workbook names must be GUIDs; derive a stable one so redeploys update in place.
  name: guid(resourceGroup().id, appInsightsId, 'pega-exchange-sync-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: loadTextContent('../workbook.json')
  }
}

output id string = workbook.id
