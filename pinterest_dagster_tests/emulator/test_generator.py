"""The source-database generator: realistic dirt, aligned tables, deterministic in SQLite and MariaDB."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from emulator import generator, source_db
from emulator.cli import main as emulator_main
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
