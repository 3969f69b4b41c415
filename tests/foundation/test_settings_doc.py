"""The settings reference (README table, local.settings.sample.json) is complete and up to date."""

from sandbox import settings_doc


def test_every_setting_has_a_description():
    names = [n for _g, n, _d in settings_doc.config_settings()]
    assert names and all(n in settings_doc.DOCS for n in names)
    assert not set(settings_doc.DOCS) - set(names) - set(settings_doc.HOST_SETTINGS), "described but never read"


def test_readme_and_sample_are_current():
    assert settings_doc.main([]) == 0, "run: python -m sandbox.settings_doc --write"
