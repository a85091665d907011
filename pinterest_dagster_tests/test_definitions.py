"""The code location loads, as `dagster dev` and the daemon load it."""

from __future__ import annotations

import subprocess

from pinterest_dagster.settings import REPO_ROOT


def test_dagster_validates_the_workspace():
    result = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout
