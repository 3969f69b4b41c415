"""The template deploys what the design says: FC1 Python 3.11 with a capped scale-out, one
user-assigned identity, keyless storage, a hardened Key Vault, Entra-only telemetry, least-privilege
roles. Asserted on pycep's tree so that a refactor that drops a property fails here, offline."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.bicep import (
    INFRA,
    MAIN,
    MODULES,
    body,
    decorators,
    main_app_settings,
    of_type,
    one_of_type,
    param,
    parse,
    platform_app_settings,
    variable,
)

FUNCTIONAPP = MODULES / "functionapp.bicep"


def _text(node: Any) -> str:
    return json.dumps(node, default=str)


def _leaves(node: Any):
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def test_plan_is_flex_consumption_fc1():
    plan = body(one_of_type(FUNCTIONAPP, "Microsoft.Web/serverfarms"))
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True  # Linux


def test_site_runs_python_311_from_a_blob_container_with_the_identity():
    site = body(one_of_type(FUNCTIONAPP, "Microsoft.Web/sites"))
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["keyVaultReferenceIdentity"] == "identityId"
    cfg = props["functionAppConfig"]
    assert cfg["runtime"] == {"name": "python", "version": "3.11"}
    storage = cfg["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"


def test_scale_out_is_capped_by_a_bounded_parameter():
    scale = body(one_of_type(FUNCTIONAPP, "Microsoft.Web/sites"))["properties"]["functionAppConfig"][
        "scaleAndConcurrency"
    ]
    assert scale == {"maximumInstanceCount": "maximumInstanceCount", "instanceMemoryMB": "instanceMemoryMB"}
    for path in (FUNCTIONAPP, MAIN):
        cap = param(path, "maximumInstanceCount")
        deco = decorators(cap)
        assert cap["type"] == "int"
        assert deco["max_value"] <= 1000
        assert 1 <= cap["default"] <= 100, "the default cap must stay small enough to protect Graph"
        assert set(decorators(param(path, "instanceMemoryMB"))["allowed"]) <= {512, 2048, 4096}
    passed = parse(MAIN)["modules"]["functionApp"]["config"]["params"]
    assert passed["maximumInstanceCount"] == "maximumInstanceCount"


def test_flex_rejected_settings_are_absent():
    settings = {**main_app_settings(), **platform_app_settings()}
    for name in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                 "AzureWebJobsStorage", "APPINSIGHTS_INSTRUMENTATIONKEY"):
        assert name not in settings, f"{name} must not be set on a Flex Consumption app with keyless storage"


def test_host_storage_is_identity_based():
    s = platform_app_settings()
    assert s["AzureWebJobsStorage__credential"] == "managedidentity"
    assert s["AzureWebJobsStorage__clientId"] == "identityClientId"
    for svc in ("blob", "queue", "table"):
        assert f".{svc}." in s[f"AzureWebJobsStorage__{svc}ServiceUri"]


def test_telemetry_is_entra_authenticated():
    s = platform_app_settings()
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    assert s["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "appInsightsConnectionString"
    ai = body(one_of_type(MODULES / "monitoring.bicep", "Microsoft.Insights/components"))["properties"]
    assert ai["DisableLocalAuth"] is True
    assert ai["WorkspaceResourceId"] == "workspace.id" or "workspace" in _text(ai["WorkspaceResourceId"])
    assert of_type(MODULES / "monitoring.bicep", "Microsoft.OperationalInsights/workspaces")


def test_app_settings_resource_merges_app_and_platform_settings():
    cfg = body(one_of_type(FUNCTIONAPP, "Microsoft.Web/sites/config"))
    assert cfg["name"] == "appsettings"
    union = cfg["properties"]["function"]
    assert union["type"] == "union"
    assert set(union["parameters"].values()) == {"appSettings", "platformSettings"}


def test_storage_is_keyless_tls12_and_private_to_entra():
    account = body(one_of_type(MODULES / "storage.bicep", "Microsoft.Storage/storageAccounts"))["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["defaultToOAuthAuthentication"] is True
    container = body(one_of_type(MODULES / "storage.bicep", "Microsoft.Storage/storageAccounts/blobServices/containers"))
    assert container["properties"]["publicAccess"] == "None"
    for rtype in ("queueServices/queues", "tableServices/tables"):
        res = one_of_type(MODULES / "storage.bicep", f"Microsoft.Storage/storageAccounts/{rtype}")
        assert "loop_type" in res["config"], f"{rtype} are created from the name list"


def test_key_vault_is_rbac_only_with_soft_delete_and_purge_protection():
    vault = body(one_of_type(MODULES / "keyvault.bicep", "Microsoft.KeyVault/vaults"))["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert "accessPolicies" not in vault


def test_key_vault_secrets_have_content_type_and_expiry():
    """What checkov's CKV_AZURE_41/114 would check if its parser unwrapped conditional resources."""
    secrets = of_type(MODULES / "keyvault.bicep", "Microsoft.KeyVault/vaults/secrets")
    assert {body(s)["name"] for s in secrets} == {"pega-client-secret", "pega-password", "graph-client-secret",
                                                 "graph-notification-key", "ews-password", "ews-oauth-client-secret"}
    for s in secrets:
        props = body(s)["properties"]
        assert props["contentType"], body(s)["name"]
        assert props["attributes"]["exp"], body(s)["name"]
        assert "condition" in s["config"], "a redeploy without the value must keep the stored secret"


def test_secrets_reach_the_app_only_as_key_vault_references():
    s = main_app_settings()
    for name in ("PEGA_CLIENT_SECRET", "PEGA_PASSWORD", "SYNC_NOTIFICATION_URL_KEY"):
        assert s[name].startswith("@Microsoft.KeyVault(SecretUri=${keyVault.outputs."), name
    assert "@Microsoft.KeyVault(SecretUri=" in _text(s["GRAPH_CLIENT_SECRET"])
    for name, p in parse(MAIN)["parameters"].items():
        if "secure" in decorators(p):
            assert p["default"] in ("", None), f"secure parameter {name} has a default value"
            leaves = [v for v in _leaves(main_app_settings()) if isinstance(v, str)]
            assert not [v for v in leaves if v == name or "${" + name + "}" in v], (
                f"secure parameter {name} goes straight into app settings instead of through Key Vault"
            )


ROLE_IDS = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
}


def test_identity_gets_the_data_roles_on_each_resource():
    roles_file = MODULES / "roles.bicep"
    roles = variable(roles_file, "roles")
    for key, guid in ROLE_IDS.items():
        assert roles[key] == guid, key
    storage_roles = variable(roles_file, "storageRoles")
    assert len(storage_roles) == 3
    for key in ("storageBlobDataOwner", "storageQueueDataContributor", "storageTableDataContributor"):
        assert key in _text(storage_roles), key
    by_scope: dict[str, str] = {}
    for r in of_type(roles_file, "Microsoft.Authorization/roleAssignments"):
        b = body(r)
        if b["properties"]["principalId"] == "principalId":
            assert b["properties"]["principalType"] == "ServicePrincipal"
            by_scope[b["scope"]] = _text(b["properties"]["roleDefinitionId"])
    assert "storageRoles" in _text(of_type(roles_file, "Microsoft.Authorization/roleAssignments")[0]["config"])
    assert "monitoringMetricsPublisher" in by_scope["appInsights"]
    assert "keyVaultSecretsUser" in by_scope["vault"]
    assert "storage" in by_scope


def test_app_starts_after_its_roles_exist():
    deps = parse(MAIN)["modules"]["functionApp"]["config"].get("depends_on") or parse(MAIN)["modules"]["functionApp"][
        "config"
    ].get("dependsOn")
    assert deps and "roles" in _text(deps)


def test_workbook_is_deployed_against_application_insights():
    wb = body(one_of_type(MODULES / "workbook.bicep", "Microsoft.Insights/workbooks"))
    assert wb["kind"] == "shared"
    assert wb["properties"]["sourceId"] == "appInsightsId"
    assert wb["properties"]["serializedData"]["function"]["parameters"]["file_path"] == "../workbook.json"
    assert (INFRA / "workbook.json").is_file()


def test_outputs_name_the_app_its_host_and_the_notification_url_base():
    outputs = parse(MAIN)["outputs"]
    for name in ("functionAppName", "functionAppHostName", "notificationUrlBase", "identityClientId"):
        assert name in outputs, name


def test_parameters_file_matches_main():
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    unknown = set(params) - set(declared)
    assert not unknown, f"main.parameters.json sets parameters main.bicep does not declare: {sorted(unknown)}"
    required = {n for n, p in declared.items() if p.get("default") is None and "secure" not in decorators(p)}
    missing = required - set(params)
    assert not missing, f"main.parameters.json lacks required parameters: {sorted(missing)}"
    for name, entry in params.items():
        if "secure" in decorators(declared[name]):
            assert "reference" in entry, f"{name}: pass secrets on the command line or as a Key Vault reference"
        allowed = decorators(declared[name]).get("allowed")
        if allowed is not None:
            assert entry["value"] in allowed, f"{name}={entry['value']!r} is not one of {allowed}"
