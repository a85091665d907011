"""The source-database generator: realistic dirt, aligned tables, 64-bit keys, deterministic in SQLite and MariaDB."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter

import pytest
import sqlalchemy as sa

from emulator import generator, source_db
from emulator.cli import main as emulator_main
from emulator.posting import encode_row
from pinterest_dagster_tests.emulator.test_errors import assert_clean_failure, run_emulator
from pinterest_dagster_tests.services import mysql_url

ROWS = 5_000


@pytest.fixture(scope="module")
def posts():
    return list(generator.generate_posts(ROWS, seed=7))


def column(posts, position, name):
    return [post[position][name] for post in posts]


def test_every_placeholder_kind_appears_at_a_realistic_rate(posts):
    expected = {
        ("title", generator.NO_TITLE),
        ("poster_name", generator.USER_INFO_ERROR),
        ("follower_count", generator.USER_INFO_ERROR),
        ("tag_list", generator.NO_TAGS),
        ("image_src", generator.IMAGE_SRC_ERROR),
        *(("description", text) for text in generator.NO_DESCRIPTIONS),
    }
    for name, placeholder in expected:
        rate = column(posts, 0, name).count(placeholder) / ROWS
        assert 0.002 < rate < 0.08, f"{name}={placeholder!r} appears in {rate:.1%} of rows"


def test_blank_strings_appear_in_text_columns(posts):
    blanks = [p[0][name] for p in posts for name in generator.PIN_TEXT_COLUMNS if p[0][name].strip() == ""]
    assert 0.005 * ROWS < len(blanks) < 0.05 * ROWS
    assert any(p[2]["first_name"] == "" for p in posts) and any(p[2]["last_name"] == "" for p in posts)


def test_follower_count_uses_every_display_format(posts):
    kinds = Counter()
    for value in column(posts, 0, "follower_count"):
        if re.fullmatch(r"\d+", value):
            kinds["digits"] += 1
        elif re.fullmatch(r"\d+k", value):
            kinds["k"] += 1
        elif re.fullmatch(r"\d+\.\dk", value):
            kinds["decimal k"] += 1
        elif re.fullmatch(r"\d+M", value):
            kinds["M"] += 1
        else:
            assert value == generator.USER_INFO_ERROR
    assert set(kinds) == {"digits", "k", "decimal k", "M"}


def test_value_domains_follow_the_contract(posts):
    pins = [p[0] for p in posts if p[0]["category"].strip()]  # blanked categories are dirt, tested above
    assert {pin["category"] for pin in pins} == set(generator.CATEGORIES)
    assert all(pin["save_location"] == f"Local save in /data/{pin['category']}" for pin in pins)
    assert set(column(posts, 0, "is_image_or_video")) == set(generator.MEDIA_TYPES)
    assert {t.year for t in column(posts, 1, "timestamp")} == set(range(2017, 2023))
    assert {t.year for t in column(posts, 2, "date_joined")} == set(range(2015, 2021))
    assert min(column(posts, 2, "age")) == 18 and max(column(posts, 2, "age")) == 70
    assert len(set(column(posts, 1, "country"))) > 150


def test_popularity_is_skewed(posts):
    counts = Counter(name for name in column(posts, 0, "poster_name") if name != generator.USER_INFO_ERROR)
    top_share = sum(n for _, n in counts.most_common(len(counts) // 10)) / sum(counts.values())
    assert top_share > 0.3, f"the top 10% of posters have only {top_share:.0%} of pins"


def test_same_seed_same_rows_different_seed_different_rows():
    assert list(generator.generate_posts(200, seed=3)) == list(generator.generate_posts(200, seed=3))
    assert list(generator.generate_posts(200, seed=3)) != list(generator.generate_posts(200, seed=4))


def read_tables(url: str) -> dict[str, list[dict]]:
    engine = source_db.connect(url)
    return {kind: list(source_db.read_rows(engine, kind)) for kind in source_db.SOURCE_TABLES}


def seed(url: str, rows: int, seed_value: int) -> None:
    assert emulator_main(["seed", "--rows", str(rows), "--seed", str(seed_value), "--db-url", url]) == 0


def test_seeded_tables_align_on_their_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    seed(url, 300, 1)
    tables = read_tables(url)
    keys = {kind: [row[source_db.SOURCE_TABLES[kind][1]] for row in rows] for kind, rows in tables.items()}
    assert keys["pin"] == keys["geo"] == keys["user"] == list(range(300))


def test_reseeding_replaces_the_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    seed(url, 300, 1)
    seed(url, 120, 2)
    tables = read_tables(url)
    assert all(len(rows) == 120 for rows in tables.values())
    assert tables["pin"][0]["unique_id"] == next(generator.generate_posts(120, seed=2))[0]["unique_id"]


@pytest.mark.mysql
def test_same_seed_gives_the_same_rows_in_sqlite_and_mariadb(tmp_path):
    sqlite_url = f"sqlite:///{tmp_path / 'source.db'}"
    maria_url = mysql_url()
    seed(sqlite_url, 1_000, 11)
    seed(maria_url, 1_000, 11)
    from_sqlite, from_maria = read_tables(sqlite_url), read_tables(maria_url)
    for kind in source_db.SOURCE_TABLES:
        assert from_sqlite[kind] == from_maria[kind], f"{kind} rows differ between SQLite and MariaDB"
    expected = [post[0] for post in generator.generate_posts(1_000, seed=11)]
    assert from_maria["pin"] == expected


# Keys above 2^31 (`seed --first-id`): real pin ids do not fit a 32-bit integer.
FIRST_ID = 3_000_000_000
INT32_MAX = 2**31 - 1


def test_default_output_of_a_seed_is_unchanged():
    """The event bytes of seed 42 as they were before --first-id existed: first_id=0 changes nothing."""
    digest = hashlib.sha256()
    for post in generator.generate_posts(1_000, seed=42):
        for row in post:
            digest.update(encode_row(row))
    assert digest.hexdigest() == "c43cdd34c022711b461339207fbf8dd94cd9ca9a519348dd7c5a1adefd91db97"
    assert list(generator.generate_posts(200, seed=3, first_id=0)) == list(generator.generate_posts(200, seed=3))


def test_first_id_shifts_the_keys_and_nothing_else():
    default = list(generator.generate_posts(300, seed=3))
    shifted = list(generator.generate_posts(300, seed=3, first_id=FIRST_ID))
    assert [post[0]["index"] for post in shifted] == list(range(FIRST_ID, FIRST_ID + 300))
    for (pin, geo, user), (big_pin, big_geo, big_user) in zip(default, shifted, strict=True):
        key = big_pin["index"]
        assert big_geo["ind"] == big_user["ind"] == key == pin["index"] + FIRST_ID
        assert {**pin, "index": key} == big_pin
        assert {**geo, "ind": key} == big_geo and {**user, "ind": key} == big_user


@pytest.mark.parametrize(
    "rows, first_id, phrase",
    [(10, -1, "must be zero or positive"), (10, generator.MAX_KEY - 8, "exceeds the largest 64-bit key")],
)
def test_generator_rejects_keys_outside_64_bits(rows, first_id, phrase):
    with pytest.raises(ValueError, match=phrase):
        next(generator.generate_posts(rows, seed=1, first_id=first_id))


def seed_from(url: str, rows: int, seed_value: int, first_id: int) -> None:
    args = ["seed", "--rows", str(rows), "--seed", str(seed_value), "--first-id", str(first_id), "--db-url", url]
    assert emulator_main(args) == 0


def assert_bigint_keys(url: str, first_id: int, rows: int) -> dict[str, list[dict]]:
    """The three tables hold exactly the keys first_id.. as Python ints, in BIGINT key columns."""
    engine = source_db.connect(url)
    inspector = sa.inspect(engine)
    for kind, (table, key) in source_db.SOURCE_TABLES.items():
        types = {c["name"]: c["type"] for c in inspector.get_columns(table.name)}
        # SQLite's INTEGER is 64-bit already; MySQL/MariaDB need BIGINT.
        expected = sa.Integer if engine.dialect.name == "sqlite" else sa.BigInteger
        assert isinstance(types[key], expected), f"{table.name}.{key} is {types[key]!r}"
    tables = read_tables(url)
    for kind, rows_of_kind in tables.items():
        keys = [row[source_db.SOURCE_TABLES[kind][1]] for row in rows_of_kind]
        assert keys == list(range(first_id, first_id + rows)), f"{kind} keys differ"
        assert all(type(k) is int for k in keys)
    return tables


def test_sqlite_stores_and_reads_keys_above_2_31(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    seed_from(url, 300, 1, FIRST_ID)
    tables = assert_bigint_keys(url, FIRST_ID, 300)
    assert min(row["index"] for row in tables["pin"]) > INT32_MAX
    expected = [post[0] for post in generator.generate_posts(300, seed=1, first_id=FIRST_ID)]
    assert tables["pin"] == expected
    with sqlite3.connect(tmp_path / "source.db") as raw:  # stored as SQLite integers, not text or real
        assert raw.execute('SELECT DISTINCT typeof("index") FROM pinterest_data').fetchall() == [("integer",)]
        assert raw.execute("SELECT max(ind) FROM user_data").fetchone() == (FIRST_ID + 299,)


def test_sqlite_takes_the_largest_64_bit_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    seed_from(url, 5, 1, generator.MAX_KEY - 4)
    assert_bigint_keys(url, generator.MAX_KEY - 4, 5)


@pytest.mark.mysql
def test_mariadb_stores_and_reads_keys_above_2_31(tmp_path):
    sqlite_url = f"sqlite:///{tmp_path / 'source.db'}"
    maria_url = mysql_url()
    seed_from(sqlite_url, 500, 11, FIRST_ID)
    seed_from(maria_url, 500, 11, FIRST_ID)
    from_sqlite, from_maria = read_tables(sqlite_url), assert_bigint_keys(maria_url, FIRST_ID, 500)
    for kind in source_db.SOURCE_TABLES:
        assert from_sqlite[kind] == from_maria[kind], f"{kind} rows differ between SQLite and MariaDB"
    seed_from(maria_url, 5, 11, generator.MAX_KEY - 4)
    assert_bigint_keys(maria_url, generator.MAX_KEY - 4, 5)


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--first-id", "-1"], "argument --first-id: must be zero or positive"),
        (["--first-id", "3e9"], "argument --first-id: invalid non_negative_int value"),
        (["--rows", "10", "--first-id", str(generator.MAX_KEY - 8)], "exceeds the largest 64-bit key"),
    ],
)
def test_bad_first_id_is_rejected_with_the_reason(tmp_path, args, phrase):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    result = run_emulator("seed", *args, "--db-url", url)
    assert_clean_failure(result, phrase)
    assert result.returncode == 2 and "usage: python -m emulator seed" in result.stderr
    assert not (tmp_path / "source.db").exists(), "a rejected seed must not touch the database"
