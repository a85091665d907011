"""raw/pin -> realtime: who is popular right now, updated by every streaming micro-batch.

Written by the step in `defs/merge/assets.py`, after `cleaned/pin`; how each table's rows are kept is in
`lib/realtime_state.py`.
"""

import dagster as dg

from pinterest_dagster.lib.delta import MERGED_TABLE_PROPERTIES
from pinterest_dagster.lib.io_managers import write_mode_metadata
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES

REALTIME_KEYS = {dg.AssetKey(["realtime", name]): table for name, table in REALTIME_TABLES.items()}

realtime_specs = [
    dg.AssetSpec(
        key,
        # After cleaned/pin: a micro-batch commits the table whose freshness users watch first.
        deps=[dg.AssetKey(["raw", "pin"]), dg.AssetKey(["cleaned", "pin"])],
        group_name="realtime", kinds={"spark", "delta"}, description=table.description,
        metadata=write_mode_metadata("merge", table.merge_keys, table_properties=MERGED_TABLE_PROPERTIES),
    )
    for key, table in REALTIME_KEYS.items()
]
