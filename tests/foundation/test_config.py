"""Invalid configuration fails at start with a message naming the setting."""

import pytest

from shared.config import AppMode, PrivatePolicy, load_settings
from shared.errors import ConfigurationError

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_follow_pegas_own_settings():
    s = load_settings(BASE)
    assert s.sync.past_days == 30
    assert s.sync.notification_frequency_minutes == 30
    assert s.sync.contact_category == "PegaSASync"
    assert s.sync.private_policy is PrivatePolicy.SKIP
    assert s.mode is AppMode.REAL


@pytest.mark.parametrize("value", ["0", "513", "-1", "many"])
def test_batch_size_outside_1_to_512_is_refused_by_name(value):
    with pytest.raises(ConfigurationError) as err:
        load_settings({**BASE, "SYNC_BATCH_SIZE": value})
    assert "SYNC_BATCH_SIZE" in str(err.value)


@pytest.mark.parametrize("value", ["1", "512", "100"])
def test_batch_size_bounds_are_inclusive(value):
    assert load_settings({**BASE, "SYNC_BATCH_SIZE": value}).sync.batch_size == int(value)


def test_missing_storage_names_the_setting():
    with pytest.raises(ConfigurationError) as err:
        load_settings({})
    assert "AzureWebJobsStorage" in str(err.value)


def test_identity_based_storage_is_accepted():
    s = load_settings({"AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net",
                       "AzureWebJobsStorage__tableServiceUri": "https://a.table.core.windows.net"})
    assert s.storage.connection_string is None


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigurationError) as err:
        load_settings({**BASE, "SYNC_PRIVATE_POLICY": "sometimes", "GRAPH_BASE_URL": "http://graph.example",
                       "APP_MODE": "production"})
    names = " ".join(err.value.settings)
    assert "SYNC_PRIVATE_POLICY" in names and "GRAPH_BASE_URL" in names and "APP_MODE" in names


def test_secret_credential_needs_a_secret():
    with pytest.raises(ConfigurationError) as err:
        load_settings({**BASE, "GRAPH_TENANT_ID": "t", "GRAPH_CLIENT_ID": "c", "GRAPH_CREDENTIAL_KIND": "secret"})
    assert "GRAPH_CLIENT_SECRET" in str(err.value)


def test_certificate_credential_needs_a_path():
    with pytest.raises(ConfigurationError) as err:
        load_settings({**BASE, "GRAPH_TENANT_ID": "t", "GRAPH_CLIENT_ID": "c", "GRAPH_CREDENTIAL_KIND": "certificate"})
    assert "GRAPH_CERTIFICATE_PATH" in str(err.value)


def test_plain_http_is_only_allowed_for_loopback_simulators():
    s = load_settings({**BASE, "GRAPH_BASE_URL": "http://127.0.0.1:7200/v1.0/"})
    assert s.graph.base_url == "http://127.0.0.1:7200/v1.0"


def test_error_message_does_not_echo_secret_values():
    with pytest.raises(ConfigurationError) as err:
        load_settings({**BASE, "PEGA_BASE_URL": "ftp://user:hunter2-secret@pega.example"})
    assert "hunter2-secret" not in str(err.value)


@pytest.mark.parametrize("value", ["0", "129", "x"])
def test_pega_concurrency_outside_1_to_128_is_refused_by_name(value):
    with pytest.raises(ConfigurationError) as err:
        load_settings({**BASE, "SYNC_PEGA_CONCURRENCY": value})
    assert "SYNC_PEGA_CONCURRENCY" in str(err.value)


def test_storage_proxy_and_pega_concurrency_defaults():
    s = load_settings(BASE)
    assert s.sync.pega_concurrency == 16 and s.storage.http_proxy == ""
    assert load_settings({**BASE, "SYNC_PEGA_CONCURRENCY": "48"}).sync.pega_concurrency == 48
