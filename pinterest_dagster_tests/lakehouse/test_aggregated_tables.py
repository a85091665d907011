"""batch_job on emulated posts: the nine aggregated Delta tables equal an independent DuckDB computation.

Both sides read the lake with the `deltalake` package, so this also shows that the tables are
readable by a Delta reader other than Spark.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest
from deltalake import DeltaTable

from pinterest_dagster.defs.clean.checks import cleaned_contract
from pinterest_dagster.lib import delta
from pinterest_dagster.transforms.aggregate import AGGREGATES
from benchmarks.duckdb_reference import duckdb_answers, same_row


@pytest.fixture(scope="module")
def batch_result(pipeline):
    pipeline.post_emulated(posts=2_400, seed=8)
    return pipeline.run_batch_job()


def read_lake(pipeline, layer, name):
    return DeltaTable(pipeline.settings.table_path(layer, name)).to_pandas()


@pytest.fixture(scope="module")
def expected(batch_result, pipeline):
    connection = duckdb.connect()
    for kind in ("pin", "geo", "user"):
        frame = read_lake(pipeline, "cleaned", kind).drop(columns=["coordinates"], errors="ignore")
        connection.register("users" if kind == "user" else kind, frame.convert_dtypes())
    return duckdb_answers(connection)


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_aggregated_table_equals_duckdb_over_the_cleaned_tables(name, pipeline, expected):
    frame = read_lake(pipeline, "aggregated", name).convert_dtypes()
    actual = sorted(tuple(None if v is None or v != v else v for v in row) for row in frame.itertuples(index=False))
    assert actual, f"aggregated/{name} is empty"
    assert len(actual) == len(expected[name])
    for actual_row, expected_row in zip(actual, sorted(expected[name])):
        assert same_row(actual_row, expected_row), (actual_row, expected_row)


def test_aggregated_materializations_carry_a_preview(batch_result):
    materializations = {
        m.asset_key.to_user_string(): m.metadata
        for m in (e.event_specific_data.materialization for e in batch_result.get_asset_materialization_events())
    }
    for name in AGGREGATES:
        metadata = materializations[f"aggregated/{name}"]
        assert metadata["dagster/row_count"].value > 0
        assert metadata["preview"].value.startswith("| ")


def test_materializing_one_aggregated_table_computes_that_one_only(batch_result, pipeline):
    versions = {name: DeltaTable(pipeline.settings.table_path("aggregated", name)).version() for name in AGGREGATES}
    one = dg.AssetKey(["aggregated", "users_joined_by_year"])
    result = pipeline.defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=[one])
    assert result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [one]
    after = {name: DeltaTable(pipeline.settings.table_path("aggregated", name)).version() for name in AGGREGATES}
    assert after == {**versions, "users_joined_by_year": versions["users_joined_by_year"] + 1}


def test_a_failed_blocking_check_of_a_cleaned_table_stops_the_aggregated_tables(batch_result, pipeline, spark):
    pin = pipeline.settings.table_path("cleaned", "pin")
    before = {name: DeltaTable(pipeline.settings.table_path("aggregated", name)).version() for name in AGGREGATES}
    version = DeltaTable(pin).version()
    delta.read_table(spark, pin).limit(1).write.format("delta").mode("append").save(pin)  # an ind twice
    try:
        job = dg.define_asset_job(
            "check_then_aggregate",
            # The cleaned tables' contract checks (their freshness check needs a materialization this instance lacks).
            selection=dg.AssetSelection.checks(*cleaned_contract.check_keys) | dg.AssetSelection.groups("aggregated"),
        )
        defs = dg.Definitions.merge(pipeline.defs, dg.Definitions(jobs=[job]))
        result = defs.resolve_job_def("check_then_aggregate").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        failed = {(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations() if not e.passed}
        assert failed == {("cleaned/pin", "ind_unique")}
        assert not result.get_asset_materialization_events()
        after = {name: DeltaTable(pipeline.settings.table_path("aggregated", name)).version() for name in AGGREGATES}
        assert after == before
    finally:
        spark.sql(f"RESTORE TABLE delta.`{pin}` TO VERSION AS OF {version}")
