"""The source database (docs/architecture.md section 2): table definitions, connection with readable errors, bulk I/O.

One SQLAlchemy schema serves SQLite and MySQL/MariaDB (through pymysql), so the same seed writes the
same rows to both. The keys (`index`, `ind`) are 64-bit (BIGINT): real pin ids exceed 2^31.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from pinterest_dagster.settings import mask_url

metadata = sa.MetaData()
# Keys are 64-bit (real pin ids exceed 2^31). SQLite's INTEGER already is, and as the primary key it stays
# the table's row id (BIGINT would make SQLite build a separate index: 10% more file, slower seeding).
KEY_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")

pinterest_data = sa.Table(
    "pinterest_data",
    metadata,
    sa.Column("index", KEY_TYPE, primary_key=True, autoincrement=False),
    sa.Column("unique_id", sa.String(36)),
    sa.Column("title", sa.String(255)),
    sa.Column("description", sa.Text),
    sa.Column("poster_name", sa.String(255)),
    sa.Column("follower_count", sa.String(32)),
    sa.Column("tag_list", sa.Text),
    sa.Column("is_image_or_video", sa.String(64)),
    sa.Column("image_src", sa.String(255)),
    sa.Column("downloaded", sa.Integer),
    sa.Column("save_location", sa.String(255)),
    sa.Column("category", sa.String(64)),
)

geolocation_data = sa.Table(
    "geolocation_data",
    metadata,
    sa.Column("ind", KEY_TYPE, primary_key=True, autoincrement=False),
    sa.Column("timestamp", sa.DateTime),
    sa.Column("latitude", sa.Double),
    sa.Column("longitude", sa.Double),
    sa.Column("country", sa.String(255)),
)

user_data = sa.Table(
    "user_data",
    metadata,
    sa.Column("ind", KEY_TYPE, primary_key=True, autoincrement=False),
    sa.Column("first_name", sa.String(255)),
    sa.Column("last_name", sa.String(255)),
    sa.Column("age", sa.Integer),
    sa.Column("date_joined", sa.DateTime),
)

# Event kind -> (table, key column). The key links the three rows of one post.
SOURCE_TABLES = {
    "pin": (pinterest_data, "index"),
    "geo": (geolocation_data, "ind"),
    "user": (user_data, "ind"),
}


class SourceDatabaseError(RuntimeError):
    """The source database cannot be reached or read; the message names the (masked) URL."""


def connect(db_url: str) -> sa.Engine:
    """An engine for `db_url`, checked by a first connection so a bad URL fails here, readably."""
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(db_url, pool_pre_ping=True)
        with engine.connect():
            pass
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SourceDatabaseError(
            f"cannot connect to the source database {mask_url(db_url)}: {_reason(exc)}"
        ) from None
    return engine


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


def recreate_tables(engine: sa.Engine) -> None:
    """Drop and create the three source tables: re-seeding replaces them."""
    metadata.drop_all(engine)
    metadata.create_all(engine)


def insert_rows(engine: sa.Engine, table: sa.Table, rows: Iterable[dict], batch_size: int = 20_000) -> int:
    """Bulk-insert rows in batches (executemany: multi-row INSERTs on MySQL); returns the count."""
    total = 0
    batch: list[dict] = []
    with engine.begin() as conn:
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                conn.execute(table.insert(), batch)
                total += len(batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
            total += len(batch)
    return total


def read_rows(engine: sa.Engine, kind: str) -> Iterator[dict]:
    """Every row of one source table, in key order, streamed from the server in chunks."""
    table, key = SOURCE_TABLES[kind]
    query = sa.select(table).order_by(table.c[key])
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
            for row in result.mappings():
                yield dict(row)
    except SQLAlchemyError as exc:
        raise SourceDatabaseError(
            f"cannot read table {table.name} from {engine.url.render_as_string(hide_password=True)}: "
            f"{_reason(exc)} (run `python -m emulator seed` first?)"
        ) from None
