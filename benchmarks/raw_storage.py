"""Raw storage per event: what keeping the event as sent (`_event`) costs on disk.

    .venv/bin/python -m benchmarks.raw_storage --posts 100000

Posts `--posts` emulated posts (3 events each) to fresh topics, ingests all of them in one ingestion
(`ingest_ranges`, as a backlog run does) into a fresh lake with an in-process Spark session, and prints
the Parquet bytes of raw/pin, raw/geo and raw/user per event. Run it on an older commit (a `git
worktree` with this file copied in) to compare layouts; docs/benchmarks.md gives both figures.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from benchmarks.common import discard_workspaces, fresh_workspace, post
from pinterest_dagster.lib.ingestion import ingest_ranges, plan_catch_up
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import TOPIC_KINDS


def raw_bytes_per_event(posts: int, seed: int = 5) -> dict[str, float]:
    settings, env = fresh_workspace()
    post(env, "--posts", str(posts), "--rate", "0", "--seed", str(seed))
    settings = dataclasses.replace(settings, spark_remote=None)
    spark = build_spark_session(settings)
    lake, kafka = LakeResource.from_settings(settings), KafkaResource.from_settings(settings)
    ranges = plan_catch_up(spark, lake, kafka)
    ingest_ranges(spark, lake, kafka, ranges)
    events = sum(r.size for r in ranges)
    sizes = {kind: sum(p.stat().st_size for p in Path(lake.path("raw", kind)).rglob("*.parquet")) for kind in TOPIC_KINDS}
    return {**{kind: size / (events / 3) for kind, size in sizes.items()}, "all": sum(sizes.values()) / events}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    args = parser.parse_args()
    figures = raw_bytes_per_event(args.posts)
    print("raw bytes per event: " + ", ".join(f"{name} {value:.1f}" for name, value in figures.items()))
    discard_workspaces()


if __name__ == "__main__":
    main()
