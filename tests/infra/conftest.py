"""checkov runs from its own venv: its pins (packaging 23.x, python-dateutil 2.x, pycep-parser
0.5.x) would downgrade the project's venv. The venv is built from infra/requirements-checkov.txt
on first use (about a minute, needs the package index) and reused while its stamp (the sha256 of
that file) matches; a make target can build the same venv and stamp ahead of time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import INFRA, ROOT

REQUIREMENTS = INFRA / "requirements-checkov.txt"
VENV = Path(os.environ.get("CHECKOV_VENV", ROOT / ".sandbox" / "checkov-venv"))
STAMP = VENV / ".requirements.sha256"


def _wanted_stamp() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def _checkov_bin() -> Path:
    return VENV / "bin" / "checkov"


def _ensure_checkov() -> Path:
    """Build (or rebuild) the isolated venv unless its stamp matches the requirements file."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    lock_path = VENV.parent / "checkov-venv.lock"
    with open(lock_path, "w") as lock:
        # Several people run the suite at once on one machine: one builds, the others wait.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _checkov_bin().exists() and STAMP.exists() and STAMP.read_text().strip() == _wanted_stamp():
            return _checkov_bin()
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        proc = subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
             "-r", str(REQUIREMENTS)],
            capture_output=True, text=True, timeout=900, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"could not install checkov into {VENV} (needs the package index):\n{proc.stderr[-3000:]}")
        STAMP.write_text(_wanted_stamp())
        return _checkov_bin()


@dataclass(frozen=True)
class CheckovReport:
    summary: dict[str, Any]
    passed: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    parsing_errors: list[str]
    seconds: float


@pytest.fixture(scope="session")
def checkov_report() -> CheckovReport:
    """One checkov run over infra/ per session (about 10 s): bicep checks plus the secrets scan."""
    try:
        exe = _ensure_checkov()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(str(exc), pytrace=False)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    env.pop("BC_API_KEY", None)
    started = time.monotonic()
    proc = subprocess.run(
        [str(exe), "--directory", str(INFRA), "--framework", "bicep", "secrets", "--skip-download",
         "--output", "json", "--compact"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False,
    )
    seconds = time.monotonic() - started
    # Exit 1 means failed checks (reported below); anything else with no JSON is a crash.
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {proc.returncode} without a JSON report:\n{proc.stderr[-3000:]}", pytrace=False)
    runs = data if isinstance(data, list) else [data]
    bicep = [r for r in runs if r.get("check_type") == "bicep"]
    assert bicep, f"checkov ran no bicep checks: {[r.get('check_type') for r in runs]}"
    passed: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    errors: list[str] = []
    for r in runs:
        res = r.get("results", {})
        passed += res.get("passed_checks", [])
        failed += res.get("failed_checks", [])
        skipped += res.get("skipped_checks", [])
        errors += res.get("parsing_errors", [])
    return CheckovReport(summary=bicep[0]["summary"], passed=passed, failed=failed, skipped=skipped,
                         parsing_errors=errors, seconds=seconds)
