"""Table maintenance in the pipeline: every table of the lake compacted, vacuumed and its log watched.

`maintenance_job` maintains the tables its config names (all by default). For each: the small files that
micro-batches leave are compacted (`OPTIMIZE`), the files no version of the retention period needs are
deleted (`VACUUM`, Delta's 7 days unless configured), and for the ingestion log the ranges older than a
day are coalesced into contiguous ranges. What each table looked like before and after (data files,
bytes, log version, commits since the last checkpoint) is the step's output metadata and, for a table
that is an asset, an observation of that asset: its page in the UI plots the files over time.

Maintenance writes tables, so its step is in the `lake_writes` pool with every other writer: it never
runs beside a micro-batch. (Should a writer run outside the pool, Delta's conflict checks and our retries keep
them apart, and the ingestion log's coalescing deletes only the rows it read: the tests run it so.)
`maintenance_schedule` queues a run for each raw table partitioned by date (their compaction is the long
work) and one run for all the other tables together, with a priority below the micro-batches', so a micro-batch
waits for at most one of these runs, never for all of them; a table that did not change since its last
maintenance (an aggregated table between two daily batches) is left out (`maintenance_due`). The other tables
share a run because each of them takes a second or two: as runs of their own, a run's launch cost more than
its work, and each took a turn of its own between two micro-batches. A table that fails in that run fails it
only once the others were maintained.
Under a sustained load a micro-batch is always waiting, and queued below them maintenance would never run
(a 10-minute soak measured it starving): `maintenance_turn_sensor` gives the oldest waiting run (a raw
table's first, unless the last turn was a raw table's) a priority above the micro-batches' whenever no maintenance
run is in flight and a micro-batch started since the last one did, so maintenance runs take turns with micro-batches,
one between two of them at most.
Raw's files are zstd: its compaction is told so (`delta.parquet_compression`), or Delta would rewrite them
with the session's codec.
"""

from datetime import date, datetime, timedelta, timezone

import dagster as dg
from dagster_pyspark import PySparkResource

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import LOG_NAME, RAW_COMPRESSION, coalesce_log, log_time
from pinterest_dagster.lib.maintenance import DELTA_DEFAULT_RETAIN_HOURS, compact, table_facts, vacuum
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.check_state import STATE_TABLE
from pinterest_dagster.lib.streaming_runs import ACTIVE_STATUSES, STREAMING_TAGS, groups_not_settled
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.aggregate import AGGREGATES

INGESTION_LOG = LOG_NAME
RAW_CHECKS_STATE = "/".join(STATE_TABLE)
# Every table of the lake, as layer/name: the assets' tables, the ingestion log, the raw checks' state and
# the realtime state.
TABLES = (
    *(f"raw/{kind}" for kind in (*TOPIC_KINDS, "rejects")), INGESTION_LOG, RAW_CHECKS_STATE, "_state/poster_pins",
    *(f"cleaned/{kind}" for kind in TOPIC_KINDS), *(f"realtime/{name}" for name in REALTIME_TABLES),
    *(f"aggregated/{name}" for name in AGGREGATES),
)
RAW_BY_DATE = tuple(f"raw/{kind}" for kind in TOPIC_KINDS)  # raw/rejects is not partitioned
ASSET_LAYERS = ("raw", "cleaned", "realtime", "aggregated")  # tables that are assets: observed
# The tables a maintenance run maintains, comma-separated: what the UI shows and what keeps a pass from queuing
# a table whose run is still queued or running.
TABLE_TAG = "pinterest/table"
# One tag per table maintained (`maintained_tag`), for `maintenance_due` to find a table's last maintenance.
MAINTAINED_TAG_PREFIX = "pinterest.maintained/"
# A maintenance run whose step failed (a table's maintenance failed, after the run's other tables were done) is not
# run again by the instance's run retries (infra/dagster/dagster.yaml): the job's tag, so that runs launched from the
# UI or the CLI carry it as well as scheduled ones. A retry would maintain every table of the run
# again, holding the lake's writes each time, and with Spark down wait out its timeout each time. The next pass
# queues the run's tables again (`maintenance_due` counts successful maintenance runs only). A run whose
# process died (killed, out of memory) failed no step, and is still run again.
RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
MAINTENANCE_TAGS = {"pipeline": "maintenance", RETRY_ON_STEP_FAILURE_TAG: "false"}
# The run queue launches higher priorities first: a micro-batch (priority 0) queued behind maintenance
# runs goes first.
PRIORITY_TAG = "dagster/priority"
MAINTENANCE_PRIORITY = "-1"
TURN_PRIORITY = "1"  # a maintenance run whose turn it is goes before the waiting micro-batch
TURN_SENSOR_INTERVAL_S = 10


class MaintenanceConfig(dg.Config):
    tables: list[str] = list(TABLES)
    vacuum_retain_hours: float = DELTA_DEFAULT_RETAIN_HOURS
    coalesce_log_after_hours: float = 24.0


# A run's tables are maintained one by one, and one that fails does not stop the others; but after this many
# failures in a row the rest are not tried: a Spark Connect server that is down makes each call retry for
# `spark_connect_timeout_s` first, and a run of 18 tables would hold the lake's writes for half an hour.
FAILURES_IN_A_ROW = 2


# The step's result is its metadata: an output of type Nothing is stored by no IO manager (the project's
# IO manager stores assets' tables).
@dg.op(pool=LAKE_WRITES, out=dg.Out(dg.Nothing),
       description="Compacts, vacuums and (the ingestion log) coalesces the configured tables.")
def maintain_tables(context: dg.OpExecutionContext, config: MaintenanceConfig, pyspark: PySparkResource,
                    lake: LakeResource):
    unknown = sorted(set(config.tables) - set(TABLES))
    if unknown:
        raise dg.Failure(f"maintenance_job: unknown tables {unknown}; the lake's tables are {', '.join(TABLES)}")
    spark = pyspark.spark_session
    metadata: dict[str, dg.RawMetadataValue] = {}
    failed: dict[str, str] = {}
    not_tried: list[str] = []
    in_a_row = 0
    for table in config.tables:
        if in_a_row == FAILURES_IN_A_ROW:
            not_tried.append(table)
            continue
        path = lake.path(*table.split("/"))
        try:
            if not delta.table_exists(spark, path):
                context.log.info(f"{table}: no table at {path} yet, nothing to maintain")
                continue
            facts = maintain(context, spark, lake, table, path, config)
        except Exception as error:  # noqa: BLE001 - the run's other tables still get theirs; it fails below
            failed[table] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            in_a_row += 1
            context.log.error(f"{table}: maintenance failed ({failed[table]})")
            continue
        in_a_row = 0
        metadata.update({f"{table} {name}": value for name, value in facts.items()})
        layer, name = table.split("/")
        if layer in ASSET_LAYERS:
            # Yielded, not logged: what the op logs is lost when it raises, and a later table may fail it.
            yield dg.AssetObservation(asset_key=dg.AssetKey([layer, name]), metadata=facts)
    if failed:
        # Nothing is lost: the next pass finds the run's tables due (no successful maintenance) and maintains them.
        # The run is not retried (RETRY_ON_STEP_FAILURE_TAG).
        raise dg.Failure(
            f"maintenance of {', '.join(failed)} failed"
            + (f", and {', '.join(not_tried)} not tried after {FAILURES_IN_A_ROW} failures in a row (is Spark reachable?)"
               if not_tried else "")
            + "; the run's other tables were maintained: "
            + "; ".join(f"{table}: {reason}" for table, reason in failed.items()), metadata=metadata)
    yield dg.Output(None, metadata={"tables": len(config.tables), **metadata})


def maintain(context, spark, lake: LakeResource, table: str, path: str, config: MaintenanceConfig) -> dict:
    before = table_facts(spark, path)
    facts: dict = {}
    if table == INGESTION_LOG:
        cutoff = log_time() - timedelta(hours=config.coalesce_log_after_hours)
        log = coalesce_log(spark, lake, older_than=cutoff,
                           keep_groups=lambda groups: groups_not_settled(context.instance, groups))
        facts.update(log_rows_before=log.rows_before, log_rows_after=log.rows_after)
    # Raw's kinds are partitioned by Kafka date: the days before today (UTC) are closed.
    closed_before = log_time().date() if table in RAW_BY_DATE else None
    compaction = compact(spark, path, RAW_COMPRESSION if table.startswith("raw/") else None, closed_before)
    vacuumed = vacuum(spark, path, config.vacuum_retain_hours)
    after = table_facts(spark, path)
    facts.update(
        **before.metadata("before"), **after.metadata("after"), files_compacted=compaction.files_removed,
        files_vacuumed=vacuumed, version=after.version, commits_since_checkpoint=after.commits_since_checkpoint,
    )
    context.log.info(
        f"{table}: {before.files:,} -> {after.files:,} data files ({before.bytes:,} -> {after.bytes:,} bytes), "
        f"{compaction.files_removed:,} compacted into {compaction.files_added:,}, {vacuumed:,} old files vacuumed"
        + (f", ingestion log {facts['log_rows_before']:,} -> {facts['log_rows_after']:,} rows" if "log_rows_before" in facts else "")
    )
    return facts


@dg.job(tags=MAINTENANCE_TAGS, description="Compacts and vacuums the lake's tables and coalesces the ingestion log.")
def maintenance_job():
    maintain_tables()


def maintained_tag(table: str) -> str:
    """The tag a maintenance run of `table` carries: a tag key has one '/' at most."""
    return MAINTAINED_TAG_PREFIX + table.replace("/", ".")


def tables_of(run: dg.DagsterRun) -> list[str]:
    """The tables a maintenance run maintains, from its TABLE_TAG."""
    return [table for table in run.tags.get(TABLE_TAG, "").split(",") if table]


def maintenance_request(tables: list[str], vacuum_retain_hours: float, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"maintain_tables": {"config": {"tables": tables, "vacuum_retain_hours": vacuum_retain_hours}}}},
        tags={TABLE_TAG: ",".join(tables), PRIORITY_TAG: MAINTENANCE_PRIORITY, **dict.fromkeys(map(maintained_tag, tables), "true")},
    )


def utc_day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, timezone.utc).date()


def maintenance_due(instance: dg.DagsterInstance, table: str, now: float, vacuum_retain_hours: float) -> bool:
    """Whether a pass should maintain `table`: yes, unless the table is an asset that no run has materialized
    since its last successful maintenance run was queued, and that run is younger than the vacuum retention.

    The aggregated tables change once a day (batch_job), the others with every micro-batch: skipping what did
    not change spares a pass nine of its 21 tables. A table left alone this long
    is maintained again all the same, so that VACUUM deletes the files its last changes replaced once they
    pass the retention, and a raw table whose last maintenance was on an earlier day (UTC) is maintained
    again, so that the day closed since gets its compaction. (Housekeeping deletes maintenance runs after a
    day: the table is then maintained again, which is safe.)"""
    layer, name = table.split("/")
    if layer not in ASSET_LAYERS:
        return True  # the ingestion log and the state tables: not assets, written by every micro-batch
    records = instance.get_run_records(dg.RunsFilter(job_name=maintenance_job.name, tags={maintained_tag(table): "true"},
                                                     statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
    if not records:
        return True
    maintained_at = records[0].create_timestamp.timestamp()
    if now - maintained_at >= vacuum_retain_hours * 3600:
        return True
    if table in RAW_BY_DATE and utc_day(maintained_at) < utc_day(now):
        return True  # a day closed since: its crowded partitions may need compacting again (lib/maintenance.py)
    changed = instance.get_latest_materialization_event(dg.AssetKey([layer, name]))
    return changed is not None and changed.timestamp >= maintained_at


def build_maintenance_schedule(cron: str, vacuum_retain_hours: float) -> dg.ScheduleDefinition:
    """On `cron`, a maintenance_job run for each raw table partitioned by date and one for the other tables,
    each queued below the micro-batches; a table whose previous maintenance run is still queued or running is
    left out, and so is a table that did not change since its last maintenance (`maintenance_due`)."""

    @dg.schedule(name="maintenance_schedule", job=maintenance_job, cron_schedule=cron, execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"maintenance_job on '{cron}' (UTC), a run per raw table and one for the others; "
                 f"files vacuumed after {vacuum_retain_hours:g} h.")
    def maintenance_schedule(context: dg.ScheduleEvaluationContext):
        busy = {table for run in context.instance.get_runs(
            dg.RunsFilter(job_name=maintenance_job.name, statuses=ACTIVE_STATUSES)) for table in tables_of(run)}
        now = (context.scheduled_execution_time or datetime.now(timezone.utc)).timestamp()
        due = [table for table in TABLES
               if table not in busy and maintenance_due(context.instance, table, now, vacuum_retain_hours)]
        at = f"{datetime.fromtimestamp(now, timezone.utc):%Y-%m-%dT%H:%M}"
        for table in (t for t in due if t in RAW_BY_DATE):
            yield maintenance_request([table], vacuum_retain_hours, f"{table}@{at}")
        others = [t for t in due if t not in RAW_BY_DATE]
        if others:
            yield maintenance_request(others, vacuum_retain_hours, f"others@{at}")

    return maintenance_schedule


# How many of the latest runs `last_started` reads: more than a pass queues (4) and the retries of a run that failed
# to launch (3) together.
LATEST_RUNS_READ = 20


def last_started(instance: dg.DagsterInstance, runs_filter: dg.RunsFilter) -> dg.RunRecord | None:
    """The run of `runs_filter` that started last, among the LATEST_RUNS_READ created last. Not the first run
    ordered by start time: runs that never started (cancelled while queued, failed to launch) have none, and
    PostgreSQL sorts those first in descending order, for good."""
    records = instance.get_run_records(runs_filter, limit=LATEST_RUNS_READ, order_by="create_timestamp", ascending=False)
    return max((record for record in records if record.start_time is not None), key=lambda record: record.start_time,
               default=None)


def maintenance_turn(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """The maintenance run whose turn it is, when no maintenance run is in flight (launched, or queued with its
    turn already) and a micro-batch started since the last maintenance run did: the oldest queued run of
    raw/pin, geo or user, unless the last turn was a raw table's, else the oldest queued one.

    Right after a maintenance run, the turn waits for a micro-batch to start: the micro-batch waiting behind it
    goes first, or, when none is waiting, the queue launches the queued maintenance runs by itself, one after the
    other. Without that wait a tick that came between a maintenance run's end and the queue's launch of the next
    micro-batch gave the turn to another maintenance run (raw/geo's started a second after raw/pin's ended in the
    soaks of 2026-12-06 16:21 and 18:50).

    Raw first: a raw table gains a file per micro-batch and Kafka partition, and its compaction's turn lasts as
    long as compacting what arrived since its last turn. When passes come faster than the turns drain them (a
    short PINTEREST_MAINTENANCE_CRON under a sustained load), oldest-first reached a raw table only once every
    21 turns: 13 minutes of events, a 29-s turn, in the soak of 2026-12-06 15:57 (docs/benchmarks.md). After a
    raw turn the oldest goes, raw or not: a pass re-queues the raw tables as soon as their runs are done, and
    with passes every few turns raw-first alone would never give the other tables one."""
    records = instance.get_run_records(dg.RunsFilter(job_name=maintenance_job.name, statuses=ACTIVE_STATUSES),
                                       order_by="create_timestamp", ascending=True)
    runs = [record.dagster_run for record in records]
    in_flight = [run for run in runs if run.status != dg.DagsterRunStatus.QUEUED or run.tags.get(PRIORITY_TAG) == TURN_PRIORITY]
    if not runs or in_flight:
        return None
    # With none in flight, the maintenance run that started last has finished: it had the last turn.
    last_turn = last_started(instance, dg.RunsFilter(job_name=maintenance_job.name))
    if last_turn is not None:
        micro_batch = last_started(instance, dg.RunsFilter(tags=STREAMING_TAGS))
        if micro_batch is None or micro_batch.start_time < last_turn.start_time:
            return None  # no micro-batch started since the last turn
        if last_turn.dagster_run.tags.get(TABLE_TAG) in RAW_BY_DATE:
            return runs[0]
    # sorted() keeps the oldest first within each group.
    return sorted(runs, key=lambda run: run.tags.get(TABLE_TAG) not in RAW_BY_DATE)[0]


@dg.sensor(name="maintenance_turn_sensor", minimum_interval_seconds=TURN_SENSOR_INTERVAL_S,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Gives the oldest queued maintenance_job run (a raw table's first, unless the last turn was one) a priority above the "
                       "micro-batches' whenever no maintenance run is in flight and a micro-batch started since the last "
                       "one: under a sustained load, maintenance runs take turns with micro-batches instead of starving.")
def maintenance_turn_sensor(context: dg.SensorEvaluationContext):
    run = maintenance_turn(context.instance)
    if run is None:
        return dg.SkipReason("no maintenance run is waiting, one has its turn, or no micro-batch started since the last one")
    # The run queue reads a queued run's priority each time it looks: raising it is the whole request.
    context.instance.add_run_tags(run.run_id, {PRIORITY_TAG: TURN_PRIORITY})
    return dg.SkipReason(f"maintenance of {run.tags.get(TABLE_TAG, '?')} ({run.run_id[:8]}) goes next")
