"""Every bicep file parses offline, and the template is self-contained (no registry modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from tests.infra.bicep import INFRA, MAIN, bicep_files, parse


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_the_template_has_a_main_and_local_modules():
    names = {p.relative_to(INFRA).as_posix() for p in bicep_files()}
    assert "main.bicep" in names
    assert any(n.startswith("modules/") for n in names)


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path):
    tree = parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path.name} declares nothing"


def test_the_parser_rejects_broken_bicep():
    """The parse test above can fail: pycep raises on a syntax error instead of guessing."""
    with pytest.raises(Exception):  # noqa: B017 - pycep raises lark's exception types
        BicepParser().parse(text="resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_modules_are_local_files(path: Path):
    """Registry modules (br/public:, ts:) cannot be restored offline; every module is a file here."""
    for name, module in parse(path).get("modules", {}).items():
        ref = module["detail"]["path"]
        assert module["type"] == "local" and not ref.startswith(("br:", "br/", "ts:", "ts/")), (
            f"{path.name}: module {name} uses {ref}"
        )
        assert (path.parent / ref).is_file(), f"{path.name}: module {name} points at missing {ref}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_loaded_files_exist(path: Path):
    for node in _walk(parse(path)):
        if isinstance(node, dict) and isinstance(node.get("function"), dict):
            fn = node["function"]
            if fn.get("type") in ("load_text_content", "load_json_content", "load_file_as_base64"):
                target = fn["parameters"]["file_path"]
                assert (path.parent / target).is_file(), f"{path.name} loads missing {target}"


def test_main_uses_every_module():
    used = {Path(m["detail"]["path"]).name for m in parse(MAIN)["modules"].values()}
    present = {p.name for p in (INFRA / "modules").glob("*.bicep")}
    assert present <= used, f"modules nobody deploys: {sorted(present - used)}"
