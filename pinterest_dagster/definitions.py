"""The Dagster code location: every asset, check, job, schedule and resource, assembled here."""

from __future__ import annotations

import warnings

import dagster as dg

from pinterest_dagster.defs.aggregate.assets import aggregated_assets
from pinterest_dagster.defs.aggregate.checks import aggregated_checks
from pinterest_dagster.defs.batch.jobs import batch_job, rebuild_job
from pinterest_dagster.defs.batch.schedules import build_daily_batch_schedule
from pinterest_dagster.defs.clean.checks import cleaned_checks
from pinterest_dagster.defs.housekeeping.jobs import build_housekeeping_schedule, housekeeping_job
from pinterest_dagster.defs.ingest.assets import ingest_kafka_events, kafka_topic_specs
from pinterest_dagster.defs.ingest.checks import raw_checks
from pinterest_dagster.defs.maintenance.jobs import build_maintenance_schedule, maintenance_job, maintenance_turn_sensor
from pinterest_dagster.defs.merge.assets import merge_assets
from pinterest_dagster.defs.merge.checks import build_freshness_checks, with_freshness_policies
from pinterest_dagster.defs.realtime.checks import realtime_checks
from pinterest_dagster.defs.streaming.jobs import streaming_job
from pinterest_dagster.defs.streaming.sensors import build_kafka_microbatch_sensor
from pinterest_dagster.lib.io_managers import SparkDeltaIOManager
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import SparkResource, spark_config
from pinterest_dagster.settings import Settings


def build_resources(settings: Settings) -> dict:
    """Every resource, from one settings object: local and production differ only in settings."""
    pyspark = SparkResource(spark_config=spark_config(settings), connect_timeout_s=settings.spark_connect_timeout_s)
    lake = LakeResource.from_settings(settings)
    return {
        "pyspark": pyspark,
        "lake": lake,
        "kafka": KafkaResource.from_settings(settings),
        "io_manager": SparkDeltaIOManager(lake=lake, pyspark=pyspark),
    }


# Who answers for every table: shown on each asset in the UI, and what alerts and catalog searches go by.
OWNERS = ["team:data-platform"]


def owned_and_linked(assets: list) -> list:
    """Every asset with its owners and a link to the source that defines it (the UI's "source code")."""
    def with_owners(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(owners=OWNERS)

    owned = [a.replace_attributes(owners=OWNERS) if isinstance(a, dg.AssetSpec) else a.map_asset_specs(with_owners)
             for a in assets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # code references are beta in Dagster 1.13; the UI shows them
        return list(dg.with_source_code_references(owned))


def build_definitions(settings: Settings) -> dg.Definitions:
    freshness_checks, freshness_sensor = build_freshness_checks(settings.freshness_minutes)
    merge = [with_freshness_policies(assets_def, settings.freshness_minutes) for assets_def in merge_assets]
    return dg.Definitions(
        assets=owned_and_linked([*kafka_topic_specs, ingest_kafka_events, *merge, *aggregated_assets]),
        asset_checks=[*raw_checks, *cleaned_checks, *realtime_checks, *aggregated_checks, *freshness_checks],
        jobs=[batch_job, rebuild_job, streaming_job, housekeeping_job, maintenance_job],
        schedules=[build_daily_batch_schedule(settings.batch_cron),
                   build_housekeeping_schedule(settings.housekeeping_cron, settings.keep_successful_runs_hours),
                   build_maintenance_schedule(settings.maintenance_cron, settings.vacuum_retain_hours)],
        sensors=[build_kafka_microbatch_sensor(settings.max_records_per_run), freshness_sensor, maintenance_turn_sensor],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings.from_env())
