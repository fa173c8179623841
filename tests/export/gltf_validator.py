"""The Khronos glTF-Validator (npm ``gltf-validator``), installed into ``.ci/node/`` and run through node.

``python -m tests.export.gltf_validator`` installs it (the Makefile's test set-up does this); tests call
:func:`validate`, which installs on first use too. Missing node or npm is a test *failure* with a message
saying what to install, never a silent skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_PREFIX = REPO / ".ci" / "node"
MODULES = NODE_PREFIX / "node_modules"
PACKAGE = "gltf-validator@2.0.0-dev.3.10"
SCRIPT = Path(__file__).with_name("validate_gltf.js")


class ValidatorUnavailable(RuntimeError):
    pass


def install() -> Path:
    """Install the validator into ``.ci/node/node_modules`` unless it is there; returns that folder."""
    if (MODULES / "gltf-validator" / "package.json").exists():
        return MODULES
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ValidatorUnavailable(
            "the glTF validator needs Node.js (18 or newer) and npm on PATH, e.g. `apt-get install nodejs npm`; "
            f"it is then installed with `npm install --prefix .ci/node {PACKAGE}` (make test does this)"
        )
    r = subprocess.run(
        [npm, "install", "--prefix", str(NODE_PREFIX), "--no-save", "--no-audit", "--no-fund", PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise ValidatorUnavailable(f"npm install {PACKAGE} failed: {r.stderr.strip()[-800:]}")
    return MODULES


def validate(path: Path | str) -> dict:
    """The validator's JSON report for a .glb/.gltf file."""
    modules = install()
    r = subprocess.run(
        [shutil.which("node") or "node", str(SCRIPT), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GLTF_VALIDATOR_DIR": str(modules)},
    )
    if r.returncode not in (0, 1):
        raise ValidatorUnavailable(f"validator did not run: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout)


def validated(path: Path | str) -> dict:
    """The report of a file that must pass with no errors: a missing validator is a test failure that
    says what to install, never a skip."""
    import pytest

    try:
        report = validate(path)
    except ValidatorUnavailable as e:
        pytest.fail(str(e))
    assert report["issues"]["numErrors"] == 0, errors_and_warnings(report)
    return report


def errors_and_warnings(report: dict) -> list[str]:
    """One line per error or warning (severity 0 or 1) in a report."""
    return [
        f"{m['code']} at {m.get('pointer', '?')}: {m['message']}"
        for m in report["issues"]["messages"]
        if m["severity"] <= 1
    ]


if __name__ == "__main__":
    try:
        print(f"glTF validator ready in {install()}")
    except ValidatorUnavailable as e:
        sys.exit(f"error: {e}")
