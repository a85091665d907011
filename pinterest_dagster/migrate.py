"""`python -m pinterest_dagster.migrate` (`make migrate`): bring a lake written by an earlier version up to date.

What changed, and what this does once (a lake already up to date is left as it is):
- raw/pin, raw/geo, raw/user gained `_event` (the event as sent) and are partitioned by `_kafka_date`
  and `_kafka_partition` (first by `_kafka_date` alone): each is rewritten in the new layout. Events ingested
  before `_event` keep their typed columns; their `_event` is null, since the text they were sent as was
  not kept.
- cleaned tables carry their winning event's lineage (`_kafka_timestamp`, `_partition`, `_offset`) and
  64-bit keys, and realtime/poster_popularity is kept through a compact state: cleaned and realtime
  tables without them are rebuilt from raw (what `full_refresh` does), so the micro-batches' merges can compare
  events with what the tables hold.
- cleaned and realtime tables and the poster state keep no per-column statistics
  (`delta.dataSkippingNumIndexedCols` = 0, `lib/delta.py`): the property is set on those that lack it, and
  applies to the files written from then on.
Stop the daemon (or the sensor) first: a micro-batch must not write while the tables are rewritten.
"""

from __future__ import annotations

import argparse
import sys
import time

from pyspark.sql import functions as F

from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import RAW_LAYOUT, RAW_TABLE_PROPERTIES, raw_is_current
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES, poster_state_path
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import TOPIC_KINDS, Settings
from pinterest_dagster.transforms.dedupe import EVENT_LINEAGE_COLUMNS
from pinterest_dagster.transforms.parse import events_as_sent, raw_partitions


def table_has_properties(spark, path: str, properties: dict[str, str]) -> bool:
    current = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {delta.sql_path(path)}").collect()}
    return all(current.get(key) == value for key, value in properties.items())


def merged_table_paths(lake: LakeResource) -> list[str]:
    """The tables micro-batches merge into, which keep no column statistics: cleaned, realtime, the poster state."""
    return ([lake.path("cleaned", kind) for kind in TOPIC_KINDS]
            + [lake.path("realtime", name) for name in REALTIME_TABLES] + [poster_state_path(lake)])


def set_properties(spark, path: str, properties: dict[str, str]) -> bool:
    """Sets `properties` on the table at `path` if it exists and lacks one of them; whether it did."""
    if not delta.table_exists(spark, path) or table_has_properties(spark, path, properties):
        return False
    listed = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    spark.sql(f"ALTER TABLE {delta.sql_path(path)} SET TBLPROPERTIES ({listed})")
    return True


def migrate_raw(spark, lake: LakeResource, kind: str) -> bool:
    path = lake.path("raw", kind)
    if not delta.table_exists(spark, path) or raw_is_current(spark, path):
        return False
    old = delta.read_table(spark, path)
    if "_event" not in old.columns:
        old = old.withColumn("_event", F.lit(None).cast("string"))
    delta.write_table(spark, old.withColumns(raw_partitions()), path, "overwrite", describe=False, **RAW_LAYOUT)
    return True


def downstream_is_current(spark, lake: LakeResource) -> bool:
    for kind in TOPIC_KINDS:
        path = lake.path("cleaned", kind)
        if delta.table_exists(spark, path):
            fields = {f.name: f.dataType.simpleString() for f in delta.read_table(spark, path).schema.fields}
            if fields.get("ind") != "bigint" or not set(EVENT_LINEAGE_COLUMNS) <= set(fields):
                return False
    realtime = delta.table_exists(spark, lake.path("realtime", "poster_popularity"))
    return not realtime or delta.table_exists(spark, poster_state_path(lake))


def rebuild_downstream(spark, lake: LakeResource) -> None:
    """What a full refresh of the cleaned and realtime tables writes, straight from raw."""
    for kind in TOPIC_KINDS:
        raw = delta.read_table(spark, lake.path("raw", kind))
        delta.write_table(spark, latest_cleaned(kind, events_as_sent(raw, kind)), lake.path("cleaned", kind),
                          "overwrite", describe=False)
        print(f"  cleaned/{kind}: rebuilt from raw/{kind}", flush=True)
    raw_pin = delta.read_table(spark, lake.path("raw", "pin"))
    for table in REALTIME_TABLES.values():
        delta.write_table(spark, table.rebuilt(spark, lake, raw_pin), lake.path("realtime", table.name), "overwrite",
                          describe=False)
        print(f"  realtime/{table.name}: rebuilt from raw/pin", flush=True)


def migrate(spark, lake: LakeResource) -> list[str]:
    """Migrates what needs it; returns what was done."""
    done = []
    for kind in TOPIC_KINDS:
        started = time.monotonic()
        if migrate_raw(spark, lake, kind):
            done.append(f"raw/{kind}")
            print(f"  raw/{kind}: rewritten with `_event`, partitioned by `_kafka_date` and `_kafka_partition` "
                  f"({time.monotonic() - started:.1f} s)", flush=True)
    set_properties(spark, lake.path("raw", "rejects"), RAW_TABLE_PROPERTIES)
    if delta.table_exists(spark, lake.path("raw", "pin")) and not downstream_is_current(spark, lake):
        # A raw table that was only repartitioned holds the same events: cleaned and realtime tables that are
        # current stay as they are (rebuilding them from raw costs as much as a backfill).
        rebuild_downstream(spark, lake)
        done.append("cleaned and realtime tables")
    merged = merged_table_paths(lake)
    if statless := [path for path in merged if set_properties(spark, path, delta.MERGED_TABLE_PROPERTIES)]:
        done.append(f"no column statistics in {len(statless)} merged tables")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinterest_dagster.migrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    settings = Settings.from_env()
    lake = LakeResource.from_settings(settings)
    print(f"migrating the lake at {settings.lake_root}", flush=True)
    done = migrate(build_spark_session(settings), lake)
    print(f"migrated: {', '.join(done)}" if done else "nothing to migrate: the lake is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
