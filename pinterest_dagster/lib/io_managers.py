"""`SparkDeltaIOManager`: PySpark DataFrames stored as Delta tables at `<lake_root>/<layer>/<name>`."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms.columns import COLUMN_DESCRIPTIONS
from pinterest_dagster.transforms.dedupe import newer_event_condition

PREVIEW_MAX_ROWS = 25


def write_mode_metadata(mode: str, merge_keys: tuple[str, ...] = (), newer_events_only: bool = False,
                        table_properties: dict[str, str] | None = None) -> dict:
    """Asset metadata that tells the IO manager how to write the asset's table.

    `newer_events_only`: a merge replaces a stored row only with a row of a newer event (docs/architecture.md
    section 4's event order), so batches may commit in any order and a replayed one changes nothing.
    `table_properties`: the Delta properties of the table, set by the write that creates it.
    """
    return {
        "write_mode": mode,
        **({"merge_keys": list(merge_keys)} if merge_keys else {}),
        **({"merge_newer_events_only": True} if newer_events_only else {}),
        **({"table_properties": dict(table_properties)} if table_properties else {}),
    }


def write_spec(context: dg.OutputContext) -> dict:
    """The asset's write metadata, with what this output's metadata says on top."""
    at_run_time = {key: getattr(value, "value", value) for key, value in (context.output_metadata or {}).items()}
    return {**(context.definition_metadata or {}), **at_run_time}


def write_args(spec: dict) -> dict:
    """`delta.write_table`'s mode and merge arguments for an asset's write metadata (`write_mode_metadata`)."""
    return {
        "mode": spec.get("write_mode", "overwrite"),
        "merge_keys": tuple(spec.get("merge_keys", ())),
        "matched_condition": newer_event_condition() if spec.get("merge_newer_events_only") else None,
        "options": dict(spec.get("table_properties") or {}),
    }


def table_schema(df: DataFrame) -> dg.TableSchema:
    """The DataFrame's columns with their types and what each means (transforms/columns.py)."""
    return column_schema({f.name: f.dataType.simpleString() for f in df.schema.fields})


def column_schema(types: dict[str, str]) -> dg.TableSchema:
    """Columns (name -> Spark type) with what each means (transforms/columns.py), as the UI shows a schema."""
    return dg.TableSchema(columns=[
        dg.TableColumn(name, type_, description=COLUMN_DESCRIPTIONS.get(name), constraints=None)
        for name, type_ in types.items()
    ])


def markdown_preview(df: DataFrame, max_rows: int = PREVIEW_MAX_ROWS) -> str:
    rows = df.limit(max_rows).collect()
    header = "| " + " | ".join(df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def write_metadata(spark, df: DataFrame, result: delta.WriteResult, preview: bool) -> dict:
    metadata = {"dagster/column_schema": table_schema(df), "path": dg.MetadataValue.path(result.path)}
    if result.version is not None:
        metadata["delta_version"] = result.version
    if result.row_count is not None:
        metadata["dagster/row_count"] = result.row_count
    if result.rows_inserted is not None:
        metadata.update(rows_inserted=result.rows_inserted, rows_updated=result.rows_updated)
    if preview:
        # Sampled from the table just written: `df` itself may be a whole computation to run again.
        metadata["preview"] = dg.MetadataValue.md(markdown_preview(delta.read_table(spark, result.path)))
    return metadata


class SparkDeltaIOManager(dg.ConfigurableIOManager):
    """Writes each asset's DataFrame to its Delta table and loads tables back as DataFrames.

    The asset's metadata picks the write: `write_mode` = `overwrite` (default, full refresh) or
    `merge` with `merge_keys` (upsert, with `merge_newer_events_only`: only by newer events);
    `preview: True` adds a Markdown sample (small tables). An output's own metadata can override
    the mode (`dg.Output(df, metadata={"write_mode": "overwrite"})`).
    Every write records the table's path, schema and Delta version; an overwrite also its row count,
    a merge the rows it inserted and updated. A merge is a micro-batch's hot path: counting the whole
    table after each one cost about 0.3 s per table, five times per run.
    """

    lake: dg.ResourceDependency[LakeResource]
    pyspark: dg.ResourceDependency[PySparkResource]

    def handle_output(self, context: dg.OutputContext, obj: DataFrame | None) -> None:
        if obj is None:  # the asset wrote its table itself (ingestion)
            return
        spec = write_spec(context)
        spark = self.pyspark.spark_session
        result = delta.write_table(spark, obj, self.lake.path_for(context.asset_key), **write_args(spec))
        context.add_output_metadata(write_metadata(spark, obj, result, preview=bool(spec.get("preview"))))

    def load_input(self, context: dg.InputContext) -> DataFrame:
        path = self.lake.path_for(context.asset_key)
        try:
            return delta.read_table(self.pyspark.spark_session, path)
        except AnalysisException as error:  # a classic session resolves the path here (Connect: on first use)
            raise FileNotFoundError(
                f"no Delta table for {context.asset_key.to_user_string()} at {path}: materialize it first"
            ) from error
