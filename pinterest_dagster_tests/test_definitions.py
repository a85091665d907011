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


def test_every_asset_has_owners_and_a_link_to_its_source():
    from pinterest_dagster.definitions import OWNERS, defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == OWNERS, key
        [reference] = node.metadata["dagster/code_references"].code_references
        assert (REPO_ROOT / reference.file_path).is_file(), key


def test_the_kafka_topics_are_external_assets_upstream_of_raw():
    import dagster as dg

    from pinterest_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    for kind in ("pin", "geo", "user"):
        topic = dg.AssetKey(["kafka", kind])
        assert not graph.get(topic).is_materializable
        assert graph.get(dg.AssetKey(["raw", kind])).parent_keys == {topic}
    assert len(graph.get(dg.AssetKey(["raw", "rejects"])).parent_keys) == 3
