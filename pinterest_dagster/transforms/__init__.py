"""Pure PySpark transformations (DataFrame in, DataFrame out) holding the rules of docs/architecture.md section 4."""

from pinterest_dagster.transforms.clean import CLEANED_COLUMNS, clean_geo, clean_pin, clean_user
from pinterest_dagster.transforms.parse import (
    KEY_COLUMN,
    RAW_METADATA_COLUMNS,
    REJECT_COLUMNS,
    SOURCE_COLUMNS,
    parse_events,
)

__all__ = [
    "CLEANED_COLUMNS",
    "KEY_COLUMN",
    "RAW_METADATA_COLUMNS",
    "REJECT_COLUMNS",
    "SOURCE_COLUMNS",
    "clean_geo",
    "clean_pin",
    "clean_user",
    "parse_events",
]
