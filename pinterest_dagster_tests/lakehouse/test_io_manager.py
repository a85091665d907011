"""SparkDeltaIOManager: write modes, recorded metadata, loading, and tables other Delta readers can read."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster_pyspark import PySparkResource
from deltalake import DeltaTable
from pyspark.errors import AnalysisException

from pinterest_dagster.defs.clean.assets import CLEANED_KEYS
from pinterest_dagster.defs.merge.assets import merge_assets
from pinterest_dagster.defs.realtime.assets import REALTIME_KEYS
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.io_managers import SparkDeltaIOManager, write_args, write_mode_metadata
from pinterest_dagster.lib.resources import LakeResource

ROWS_V1 = [(1, "a"), (2, "b")]
ROWS_V2 = [(2, "B"), (3, "c")]


@pytest.fixture
def io_manager(spark, tmp_path):
    pyspark = PySparkResource(spark_config={})
    pyspark._spark_session = spark  # the suite's session; resources otherwise build their own
    return SparkDeltaIOManager(lake=LakeResource(root=str(tmp_path)), pyspark=pyspark)


def output_context(key: list[str], metadata: dict) -> dg.OutputContext:
    return dg.build_output_context(asset_key=dg.AssetKey(key), definition_metadata=metadata)


def write(io_manager, spark, rows, metadata, key=("layer", "table")):
    context = output_context(list(key), metadata)
    io_manager.handle_output(context, spark.createDataFrame(rows, "id int, name string"))
    return context


def table_rows(io_manager, key=("layer", "table")):
    df = io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(list(key))))
    return sorted(tuple(r) for r in df.collect())


def test_overwrite_replaces_the_table(io_manager, spark):
    write(io_manager, spark, ROWS_V1, write_mode_metadata("overwrite"))
    write(io_manager, spark, ROWS_V2, write_mode_metadata("overwrite"))
    assert table_rows(io_manager) == [(2, "B"), (3, "c")]


def test_merge_upserts_on_the_keys(io_manager, spark):
    write(io_manager, spark, ROWS_V1, write_mode_metadata("merge", ("id",)))
    write(io_manager, spark, ROWS_V2, write_mode_metadata("merge", ("id",)))
    assert table_rows(io_manager) == [(1, "a"), (2, "B"), (3, "c")]


def test_default_mode_is_overwrite_and_the_path_is_layer_slash_name(io_manager, spark, tmp_path):
    write(io_manager, spark, ROWS_V1, {})
    write(io_manager, spark, ROWS_V2, {})
    assert table_rows(io_manager) == [(2, "B"), (3, "c")]
    assert (tmp_path / "layer" / "table" / "_delta_log").is_dir()


def test_an_overwrite_records_row_count_schema_path_and_version(io_manager, spark, tmp_path):
    write(io_manager, spark, ROWS_V1, write_mode_metadata("overwrite"))
    context = write(io_manager, spark, ROWS_V2 + [(4, "d")], write_mode_metadata("overwrite"))
    metadata = context.get_logged_metadata()
    assert metadata["dagster/row_count"].value == 3
    schema = metadata["dagster/column_schema"].value
    assert [(c.name, c.type) for c in schema.columns] == [("id", "int"), ("name", "string")]
    assert metadata["path"] == dg.MetadataValue.path(str(tmp_path / "layer" / "table"))
    assert metadata["delta_version"].value == 1
    assert "preview" not in metadata


def test_a_merge_records_what_it_changed_instead_of_counting_the_table(io_manager, spark, tmp_path):
    write(io_manager, spark, ROWS_V1, write_mode_metadata("merge", ("id",)))
    context = write(io_manager, spark, ROWS_V2, write_mode_metadata("merge", ("id",)))
    metadata = context.get_logged_metadata()
    assert (metadata["rows_inserted"].value, metadata["rows_updated"].value) == (1, 1)  # id 3 new, id 2 changed
    assert metadata["delta_version"].value == 1
    assert "dagster/row_count" not in metadata


def test_a_merged_table_counts_rows_per_file_and_keeps_no_column_statistics(spark, tmp_path):
    """The tables micro-batches merge into are written with MERGED_TABLE_PROPERTIES (their specs say so): each
    file's row count stays in the Delta log (counts need no scan), no column's minimum, maximum or nulls do."""
    path = str(tmp_path / "t")
    for rows in (ROWS_V1, ROWS_V2):
        delta.write_table(spark, spark.createDataFrame(rows, "id INT, name STRING"), path, "merge", ("id",),
                          describe=False, options=delta.MERGED_TABLE_PROPERTIES)
    added = [json.loads(json.loads(line)["add"]["stats"]) for log in sorted((tmp_path / "t" / "_delta_log").glob("*.json"))
             for line in log.read_text().splitlines() if '"add"' in line]
    assert added and all(stats["numRecords"] > 0 and not stats.get("minValues") and not stats.get("maxValues")
                         and not stats.get("nullCount") for stats in added)
    assert delta.read_table(spark, path).count() == 3
    specs = {key: spec for assets_def in merge_assets for key, spec in assets_def.metadata_by_key.items()}
    assert set(specs) == {*CLEANED_KEYS, *REALTIME_KEYS}
    assert all(write_args(spec)["options"] == delta.MERGED_TABLE_PROPERTIES for spec in specs.values())


def test_a_merge_without_describe_reports_its_changes_from_the_merge_alone(spark, tmp_path):
    """A micro-batch's merges skip the DESCRIBE HISTORY that finds the new version: what they changed still comes
    with the MERGE's result."""
    path = str(tmp_path / "t")
    first = delta.write_table(spark, spark.createDataFrame(ROWS_V1, "id INT, name STRING"), path, "merge", ("id",),
                              describe=False)
    assert (first.version, first.rows_inserted, first.row_count) == (None, None, None)  # the merge created the table
    result = delta.write_table(spark, spark.createDataFrame(ROWS_V2, "id INT, name STRING"), path, "merge", ("id",),
                               describe=False)
    assert (result.version, result.rows_inserted, result.rows_updated) == (None, 1, 1)
    assert delta.latest_commit(spark, path).operation == "MERGE"
    assert sorted(map(tuple, delta.read_table(spark, path).collect())) == [(1, "a"), (2, "B"), (3, "c")]


def test_small_tables_get_a_markdown_preview(io_manager, spark):
    context = write(io_manager, spark, ROWS_V1, {**write_mode_metadata("overwrite"), "preview": True})
    preview = context.get_logged_metadata()["preview"].value
    assert preview.splitlines()[:3] == ["| id | name |", "| --- | --- |", "| 1 | a |"]


def test_loading_a_table_never_written_names_the_asset_and_path(io_manager):
    with pytest.raises(FileNotFoundError, match="cleaned/pin.*materialize it first"):
        io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(["cleaned", "pin"])))


def test_replace_where_is_idempotent(spark, tmp_path):
    path = str(tmp_path / "raw")
    df = spark.createDataFrame([(0, 1), (0, 2), (1, 3)], "_partition int, _offset long")
    for _ in range(2):
        delta.write_table(spark, df, path, "replace_where", replace_where="_offset >= 1 AND _offset < 4")
    assert delta.read_table(spark, path).count() == 3


def test_table_exists_answers_for_missing_tables_and_raises_for_paths_delta_cannot_name(spark, tmp_path):
    path = str(tmp_path / "t")
    assert not delta.table_exists(spark, path)
    (tmp_path / "empty").mkdir()
    assert not delta.table_exists(spark, str(tmp_path / "empty"))
    delta.write_table(spark, spark.range(1), path, "append")
    assert delta.table_exists(spark, path)
    # Taken for "no table", a relative path would make a catch-up re-read every topic from offset 0.
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        delta.table_exists(spark, "relative/t")


def test_unknown_write_mode_is_refused(spark, tmp_path):
    with pytest.raises(ValueError, match="unknown Delta write mode 'upsert'"):
        delta.write_table(spark, spark.range(1), str(tmp_path / "t"), "upsert")


def test_tables_are_readable_by_the_deltalake_package(io_manager, spark, tmp_path):
    write(io_manager, spark, ROWS_V1, write_mode_metadata("merge", ("id",)))
    write(io_manager, spark, ROWS_V2, write_mode_metadata("merge", ("id",)))
    table = DeltaTable(str(tmp_path / "layer" / "table"))
    assert table.version() == 1
    assert sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "name": "a"}, {"id": 2, "name": "B"}, {"id": 3, "name": "c"},
    ]


def test_concurrent_merges_into_one_table_all_land_a_conflict_being_tried_again(spark, tmp_path, caplog):
    """Four MERGEs at once into one table, as writers outside the pipeline's pool could be: Delta fails
    the commits that find another in their way, and write_table tries them again."""
    from concurrent.futures import ThreadPoolExecutor

    path = str(tmp_path / "t")
    delta.write_table(spark, spark.range(0).selectExpr("id", "id AS v"), path, "append")

    def merge(batch: int):
        rows = spark.range(batch * 100, batch * 100 + 100).selectExpr("id", f"{batch} AS v")
        delta.write_table(spark, rows, path, "merge", ("id",), describe=False)

    with caplog.at_level("WARNING"), ThreadPoolExecutor(4) as pool:
        list(pool.map(merge, range(4)))
    table = delta.read_table(spark, path)
    assert table.count() == table.select("id").distinct().count() == 400
    assert "Delta conflict writing" in caplog.text and "trying again (1 of 3)" in caplog.text
