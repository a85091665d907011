"""The local stack's tooling: missing prerequisites give one sentence on what to install."""

from __future__ import annotations

import os
import subprocess

import pytest

from pinterest_dagster.settings import REPO_ROOT


def path_without(tmp_path, hidden: str) -> str:
    """A PATH holding every command of the current PATH except `hidden`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in reversed(os.environ["PATH"].split(os.pathsep)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = os.path.join(folder, name)
            if name != hidden and os.access(target, os.X_OK) and not os.path.isdir(target):
                link = bin_dir / name
                link.unlink(missing_ok=True)
                link.symlink_to(target)
    return str(bin_dir)


@pytest.mark.parametrize("tool, phrase", [("java", "Java 17 is required"), ("mvn", "Maven is required")])
def test_make_names_the_missing_tool(tmp_path, tool, phrase):
    result = subprocess.run(
        ["make", "--no-print-directory", "check-tools"], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "PATH": path_without(tmp_path, tool)},
    )
    assert result.returncode != 0
    assert phrase in result.stdout + result.stderr


def test_stack_without_java_says_what_to_install(tmp_path):
    result = subprocess.run(
        ["bash", "infra/stack.sh", "up", "kafka"], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "PATH": path_without(tmp_path, "java")},
    )
    assert result.returncode != 0
    assert "Java 17 is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_stack_rejects_an_unknown_command():
    result = subprocess.run(["bash", "infra/stack.sh", "restart"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "usage: infra/stack.sh" in result.stderr
