"""The local stack's tooling: missing prerequisites give one sentence on what to install."""

from __future__ import annotations

import os
import subprocess

import pytest
from kafka import KafkaAdminClient

from pinterest_dagster.lib.kafka import client_config
from pinterest_dagster.settings import REPO_ROOT
from pinterest_dagster_tests.services import isolated_settings, require_kafka, require_spark_connect, wait_for


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


def warm_up_topics_deleted(settings) -> None:
    """The warm-up's topics are gone: its deletion returns once the controller accepts it, and the broker
    forgets a deleted topic asynchronously, so this asks again for up to 30 s."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        wait_for(lambda: not [t for t in admin.list_topics() if t.startswith(f"{settings.topic_prefix}-warm-up.")],
                 30, "the warm-up's topics to be deleted", poll_s=0.5)
    finally:
        admin.close()


def test_the_warm_up_runs_micro_batches_on_the_connect_server_and_leaves_nothing_behind(tmp_path):
    """What `infra/stack.sh up spark-connect` runs on a server it has just started (here: the running one)."""
    settings = isolated_settings(spark_remote=require_spark_connect())
    require_kafka(settings)
    env = {**os.environ, "SPARK_REMOTE": settings.spark_remote, "PINTEREST_TOPIC_PREFIX": settings.topic_prefix,
           "TMPDIR": str(tmp_path)}
    done = subprocess.run([str(REPO_ROOT / ".venv/bin/python"), "-m", "pinterest_dagster.warm_up", "--rounds", "2",
                           "--posts", "50"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "micro-batch 2 of 2 took" in done.stdout and "2 micro-batches on" in done.stdout
    warm_up_topics_deleted(settings)
    assert list(tmp_path.iterdir()) == []  # its lake was a temporary folder, deleted


def test_a_warm_up_whose_micro_batch_fails_says_why_and_leaves_nothing_behind(tmp_path):
    """A warm-up that fails (here: a setting the server refuses, for every session) leaves no topics or lake;
    infra/stack.sh then says the server runs anyway."""
    settings = isolated_settings(spark_remote=require_spark_connect())
    require_kafka(settings)
    conf, scratch = tmp_path / "spark-defaults.conf", tmp_path / "tmp"
    conf.write_text("spark.executor.memory 8g\n")  # the server's own setting, not a session's
    scratch.mkdir()
    env = {**os.environ, "SPARK_REMOTE": settings.spark_remote, "PINTEREST_TOPIC_PREFIX": settings.topic_prefix,
           "PINTEREST_SPARK_CONF": str(conf), "TMPDIR": str(scratch)}
    done = subprocess.run([str(REPO_ROOT / ".venv/bin/python"), "-m", "pinterest_dagster.warm_up", "--rounds", "1",
                           "--posts", "10"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    # The cause's own sentence in the warm-up's message (Dagster's console log may print it too, before).
    said = done.stderr.split("warm-up: a micro-batch failed:\n", 1)[-1]
    assert said.startswith("resources:\n") and "refused spark.executor.memory=8g" in said, done.stderr[-3000:]
    warm_up_topics_deleted(settings)
    assert list(scratch.iterdir()) == []
