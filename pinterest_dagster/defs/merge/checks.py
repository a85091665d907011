"""Freshness of what streaming keeps current: `cleaned/pin` and the realtime tables.

Each carries a freshness policy (the UI shows it fresh or stale; the daemon's freshness evaluation is on in
the instance files) and a freshness check that fails when no micro-batch has merged into it within the
window (PINTEREST_FRESHNESS_MINUTES, default 15). A quiet Kafka, with nothing to merge, makes them stale
too: the window says how long streaming may go without an update before someone should look.
"""

import warnings
from datetime import timedelta

import dagster as dg

from pinterest_dagster.defs.realtime.assets import REALTIME_KEYS
from pinterest_dagster.lib.streaming_runs import FRESHNESS_SENSOR

STREAMED_KEYS = [dg.AssetKey(["cleaned", "pin"]), *REALTIME_KEYS]


def freshness_policy(minutes: float) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=minutes))


def with_freshness_policies(assets_def: dg.AssetsDefinition, minutes: float) -> dg.AssetsDefinition:
    """`assets_def` with the freshness policy on each streamed table it holds."""
    policy = freshness_policy(minutes)
    return assets_def.map_asset_specs(
        lambda spec: dg.apply_freshness_policy(spec, policy) if spec.key in STREAMED_KEYS else spec
    )


def build_freshness_checks(minutes: float) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """The freshness checks of the streamed tables, and the sensor that evaluates them when one may have
    changed (a run of the checks only reads Dagster's event log: no Spark, no lake).

    Dagster 1.13 calls these superseded by freshness policies, which the UI shows but which are no asset
    checks: a check is what fails in the UI's checks, alerts and `dagster asset check` tooling. The
    supersession notice is silenced here, the one place that builds them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        checks = list(dg.build_last_update_freshness_checks(
            assets=STREAMED_KEYS, lower_bound_delta=timedelta(minutes=minutes)))
        sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, name=FRESHNESS_SENSOR, minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    return checks, sensor
