"""Helpers to read infra/*.bicep through pycep-parser's JSON tree (no bicep CLI exists offline)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
MODULES = INFRA / "modules"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """Parse once per session; pycep raises on a syntax error."""
    return BicepParser().parse(file_path=path)


def resources(path: Path) -> dict[str, dict[str, Any]]:
    return parse(path).get("resources", {})


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body; pycep nests the body of a conditional or `for` resource under config.config."""
    cfg = resource["config"]
    if "config" in cfg and ("condition" in cfg or "loop_type" in cfg):
        return cfg["config"]
    return cfg


def is_reference(path: Path, value: Any) -> bool:
    """pycep renders an identifier and a string literal alike; a declared name is a reference."""
    tree = parse(path)
    return isinstance(value, str) and (
        "${" in value or value in tree.get("parameters", {}) or value in tree.get("variables", {})
    )


def of_type(path: Path, rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources(path).values() if r["type"].lower() == rtype.lower()]


def one_of_type(path: Path, rtype: str) -> dict[str, Any]:
    found = of_type(path, rtype)
    assert len(found) == 1, f"{path.name}: expected one {rtype}, found {len(found)}"
    return found[0]


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def param(path: Path, name: str) -> dict[str, Any]:
    return parse(path)["parameters"][name]


def decorators(p: dict[str, Any]) -> dict[str, Any]:
    return {d["type"]: d.get("argument") for d in p.get("decorators", [])}


def main_app_settings() -> dict[str, Any]:
    """The app's own settings (main.bicep `appSettings`)."""
    value = variable(MAIN, "appSettings")
    assert isinstance(value, dict)
    return value


def platform_app_settings() -> dict[str, Any]:
    """Host settings added by modules/functionapp.bicep (`platformSettings`)."""
    value = variable(MODULES / "functionapp.bicep", "platformSettings")
    assert isinstance(value, dict)
    return value


def all_app_settings() -> dict[str, Any]:
    return {**main_app_settings(), **platform_app_settings()}
