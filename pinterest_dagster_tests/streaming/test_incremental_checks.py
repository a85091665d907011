"""The daily raw checks read what arrived since they last passed, not all of raw (lib/check_state.py);
a run tagged for a full check (every rebuild_job) reads everything. Real broker, in-process runs."""

from __future__ import annotations

import dagster as dg
import pytest
from pyspark.sql import functions as F

from pinterest_dagster.defs.ingest.checks import COMPLETENESS_CHECK, DRIFT_CHECK
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.check_state import FULL_CHECK_TAG
from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster_tests.pipeline import make_pipeline


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory, source_url):
    return make_pipeline(tmp_path_factory, source_url, spark_remote=None)


def raw_checks(pipeline, full: bool = False) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Both raw checks of the three topics, as batch_job (or, `full`, rebuild_job) runs them."""
    keys = [dg.AssetCheckKey(dg.AssetKey(["raw", kind]), name) for kind in TOPIC_KINDS for name in (COMPLETENESS_CHECK, DRIFT_CHECK)]
    job = dg.define_asset_job("raw_checks", selection=dg.AssetSelection.checks(*keys),
                              tags={FULL_CHECK_TAG: "full"} if full else None)
    defs = dg.Definitions.merge(pipeline.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("raw_checks").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def stream(pipeline, posts: int, seed: int) -> list:
    """`posts` emulated posts through one micro-batch; the ranges it ingested."""
    ranges = pipeline.ranges_sent_by(lambda: pipeline.post_emulated(posts=posts, seed=seed))
    pipeline.run_job("streaming_job", run_config(ranges))
    return ranges


def metadata(check: dg.AssetCheckEvaluation, key: str):
    return check.metadata[key].value


def duplicate_one_row(spark, pipeline, ranges: list) -> None:
    """Append a second copy of the first event of the pin range, as a faulty writer would."""
    pin = next(r for r in ranges if r.topic == pipeline.settings.topic("pin"))
    path = pipeline.settings.table_path("raw", "pin")
    row = delta.read_table(spark, path).where((F.col("_partition") == pin.partition) & (F.col("_offset") == pin.start))
    delta.write_table(spark, row, path, "append", describe=False)


def test_the_raw_checks_read_what_arrived_since_they_last_passed(pipeline):
    stream(pipeline, posts=30, seed=1)
    first = raw_checks(pipeline)
    assert all(check.passed for check in first.values()), {k: c.metadata for k, c in first.items() if not c.passed}
    pin = first[("pin", COMPLETENESS_CHECK)]
    assert (metadata(pin, "read"), metadata(pin, "offsets_checked")) == ("all of raw", 30)
    assert metadata(first[("pin", DRIFT_CHECK)], "events_read") == "all of raw"

    stream(pipeline, posts=12, seed=2)
    second = raw_checks(pipeline)
    assert all(check.passed for check in second.values())
    for kind in TOPIC_KINDS:
        completeness = second[(kind, COMPLETENESS_CHECK)]
        assert (metadata(completeness, "read"), metadata(completeness, "offsets_checked")) == ("since the last passing check", 12)
        assert metadata(second[(kind, DRIFT_CHECK)], "events_read") == "since the last check"
    # Nothing arrived since: nothing to read, and nothing missing.
    third = raw_checks(pipeline)
    assert metadata(third[("pin", COMPLETENESS_CHECK)], "offsets_checked") == 0 and third[("pin", COMPLETENESS_CHECK)].passed


def test_a_double_in_what_arrived_fails_the_daily_check_one_in_what_it_had_checked_a_full_check(pipeline, spark):
    old = stream(pipeline, posts=5, seed=3)
    assert raw_checks(pipeline)[("pin", COMPLETENESS_CHECK)].passed
    duplicate_one_row(spark, pipeline, old)
    # The daily check does not read again what it has checked (only rewritten ranges); a full check does.
    assert raw_checks(pipeline)[("pin", COMPLETENESS_CHECK)].passed
    full = raw_checks(pipeline, full=True)[("pin", COMPLETENESS_CHECK)]
    assert not full.passed and metadata(full, "read") == "all of raw" and metadata(full, "duplicate_offsets") == 1

    new = stream(pipeline, posts=5, seed=4)
    duplicate_one_row(spark, pipeline, new)
    daily = raw_checks(pipeline)[("pin", COMPLETENESS_CHECK)]
    # A failing check moves nothing on: the daily one reads from where it last passed, which holds the
    # new double and not the old one.
    assert not daily.passed and metadata(daily, "duplicate_offsets") == 1 and metadata(daily, "offsets_checked") == 5
