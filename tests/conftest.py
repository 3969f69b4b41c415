"""Shared pytest set-up. Each stand-in service has its own plugin module in tests/plugins/."""

pytest_plugins = [
    "tests.plugins.azurite",
    "tests.plugins.app_host",
    "tests.plugins.graph_sim",
    "tests.plugins.ews_sim",
    "tests.plugins.pega_sim",
]
