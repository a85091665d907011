"""The pipeline answered independently in DuckDB SQL: the tests check Spark's answers against it,
the batch benchmark times it against `batch_job`.

The nine questions share no code with `pinterest_dagster.transforms.aggregate`: "top" is the group's
maximum joined back and the first name reaching it (no ranking), medians are DuckDB's `quantile_cont`.
They read tables registered as `pin`, `geo` and `users` (`user` is a keyword), which `clean_raw`
builds from raw events with the rules of docs/architecture.md section 4, written again in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The source's "no value" texts (docs/architecture.md section 2): null in any text column, as in Spark's cleaning.
PLACEHOLDERS = (
    "No Title Data Available", "No description available Story format", "No description available", "Untitled",
    "User Info Error", "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "Image src error.",
)
# Blank = only Unicode white space (Z* and the Cc controls \t-\r, \x85) or other controls.
BLANK_PATTERN = r"^[\p{Z}\p{Cc}]*$"
FOLLOWER_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)\s*$"
SAVE_LOCATION_PREFIX = r"^\s*(?i:Local save in)\s*"


def sql_strings(values: Sequence[str]) -> str:
    """`values` as a comma-separated list of SQL string literals."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def blank_sql(text: str) -> str:
    return f"CASE WHEN NOT regexp_matches({text}, '{BLANK_PATTERN}') THEN {text} END"


def text_sql(column: str) -> str:
    """A source text column with blanks and placeholders as null."""
    placeholders = sql_strings(PLACEHOLDERS)
    return f"CASE WHEN trim({column}, ' ') NOT IN ({placeholders}) THEN {blank_sql(column)} END"


def follower_count_sql(text: str) -> str:
    number = f"TRY_CAST(nullif(regexp_extract({text}, '{FOLLOWER_PATTERN}', 1), '') AS DECIMAL(38, 6))"
    suffix = f"upper(regexp_extract({text}, '{FOLLOWER_PATTERN}', 2))"
    multiplier = f"CASE {suffix} WHEN 'K' THEN 1000 WHEN 'M' THEN 1000000 ELSE 1 END"
    return f"TRY_CAST(round({number} * {multiplier}) AS BIGINT)"


def timestamp_sql(text: str) -> str:
    """UTC: text without a zone is read as UTC (the connection's time zone must be UTC)."""
    return f"TRY_CAST({text} AS TIMESTAMPTZ)::TIMESTAMP"


def latest_sql(select: str, raw: str) -> str:
    """One row per ind: the event with the highest (_kafka_timestamp, _offset)."""
    return f"""SELECT * EXCLUDE (_kafka_timestamp, _offset) FROM (SELECT {select}, _kafka_timestamp, _offset FROM {raw})
        QUALIFY row_number() OVER (PARTITION BY ind ORDER BY _kafka_timestamp DESC, _offset DESC) = 1"""


PIN_TEXT = ("unique_id", "title", "description", "poster_name", "tag_list", "is_image_or_video", "image_src", "category")
CLEANED_SQL = {
    "pin": latest_sql(f"""TRY_CAST("index" AS BIGINT) AS ind, {text_sql("unique_id")} AS unique_id,
        {text_sql("title")} AS title, {text_sql("description")} AS description,
        {follower_count_sql(text_sql("follower_count"))} AS follower_count,
        {", ".join(f"{text_sql(c)} AS {c}" for c in PIN_TEXT[3:7])},
        {blank_sql(f"regexp_replace({text_sql('save_location')}, '{SAVE_LOCATION_PREFIX}', '')")} AS save_location,
        {text_sql("category")} AS category,
        CASE WHEN TRY_CAST(downloaded AS INTEGER) IN (0, 1) THEN TRY_CAST(downloaded AS INTEGER) END AS downloaded""",
        "raw_pin"),
    "geo": latest_sql(f"""TRY_CAST(ind AS BIGINT) AS ind, {text_sql("country")} AS country,
        CASE WHEN TRY_CAST(latitude AS DOUBLE) BETWEEN -90 AND 90 AND TRY_CAST(longitude AS DOUBLE) BETWEEN -180 AND 180
            THEN [TRY_CAST(latitude AS DOUBLE), TRY_CAST(longitude AS DOUBLE)] END AS coordinates,
        {timestamp_sql('"timestamp"')} AS timestamp""", "raw_geo"),
    "user": latest_sql(f"""TRY_CAST(ind AS BIGINT) AS ind,
        nullif(concat_ws(' ', trim({text_sql("first_name")}, ' '), trim({text_sql("last_name")}, ' ')), '') AS user_name,
        TRY_CAST(age AS INTEGER) AS age, {timestamp_sql("date_joined")} AS date_joined""", "raw_user"),
}


def clean_raw(connection, raw_files: dict[str, Sequence[str]]) -> dict[str, int]:
    """Build the cleaned tables `pin`, `geo`, `users` from the raw tables' Parquet files; their row counts."""
    connection.execute("SET TimeZone = 'UTC'")
    counts = {}
    for kind, sql in CLEANED_SQL.items():
        connection.execute(f"CREATE OR REPLACE VIEW raw_{kind} AS SELECT * FROM read_parquet([{sql_strings(raw_files[kind])}])")
        table = "users" if kind == "user" else kind
        connection.execute(f"CREATE OR REPLACE TABLE {table} AS {sql}")
        counts[kind] = connection.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return counts


def load_cleaned(connection, cleaned_files: dict[str, Sequence[str]], lineage: Sequence[str]) -> dict[str, int]:
    """Register the project's cleaned tables (`pin`, `geo`, `users`) from their Parquet files, without the
    `lineage` columns, for the nine questions; their row counts."""
    connection.execute("SET TimeZone = 'UTC'")
    counts = {}
    for kind, paths in cleaned_files.items():
        table = "users" if kind == "user" else kind
        connection.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * EXCLUDE ({', '.join(lineage)}) "
                           f"FROM read_parquet([{sql_strings(paths)}])")
        counts[kind] = connection.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return counts


AGE_GROUP_SQL = """CASE WHEN age BETWEEN 18 AND 24 THEN '18-24' WHEN age BETWEEN 25 AND 35 THEN '25-35'
    WHEN age BETWEEN 36 AND 50 THEN '36-50' WHEN age > 50 THEN '+50' END"""
PIN_GEO = "SELECT *, year(timestamp) AS post_year FROM pin JOIN geo USING (ind)"
PIN_USER = f"""SELECT *, {AGE_GROUP_SQL} AS age_group, year(date_joined) AS post_year
    FROM pin JOIN users USING (ind)"""


def top_sql(source: str, group: str, name: str, value: str) -> str:
    """Top per group without ranking: the group's max, then the first name reaching it."""
    return f"""
        WITH src AS ({source}),
        best AS (SELECT {group}, max({value}) AS {value} FROM src GROUP BY {group})
        SELECT {group}, min({name}), {value} FROM src JOIN best USING ({group}, {value})
        GROUP BY {group}, {value}"""


def category_counts_sql(posts: str, group: str, where: str = "TRUE") -> str:
    return f"""SELECT {group}, category, count(*) AS category_count FROM ({posts})
        WHERE {group} IS NOT NULL AND category IS NOT NULL AND {where} GROUP BY ALL"""


KNOWN_POSTERS = f"""SELECT * FROM ({PIN_GEO})
    WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL"""

DUCKDB_SQL = {
    "top_category_by_country": top_sql(
        category_counts_sql(PIN_GEO, "country"), "country", "category", "category_count"
    ),
    "top_category_by_year": top_sql(
        category_counts_sql(PIN_GEO, "post_year", "post_year BETWEEN 2018 AND 2022"),
        "post_year", "category", "category_count",
    ),
    "top_user_by_country": top_sql(
        f"""SELECT country, poster_name, max(follower_count) AS follower_count
            FROM ({KNOWN_POSTERS}) GROUP BY ALL""",
        "country", "poster_name", "follower_count",
    ),
    "top_country_by_followers": f"""WITH src AS ({KNOWN_POSTERS})
        SELECT min(country), max(follower_count) FROM src
        WHERE follower_count = (SELECT max(follower_count) FROM src)""",
    "top_category_by_age_group": top_sql(
        category_counts_sql(PIN_USER, "age_group"), "age_group", "category", "category_count"
    ),
    "median_followers_by_age_group": f"""SELECT age_group, quantile_cont(follower_count, 0.5)
        FROM ({PIN_USER}) WHERE age_group IS NOT NULL AND follower_count IS NOT NULL GROUP BY ALL""",
    "users_joined_by_year": """SELECT year(date_joined), count(*) FROM (
            SELECT DISTINCT user_name, age, date_joined FROM users
            WHERE user_name IS NOT NULL AND age IS NOT NULL AND date_joined IS NOT NULL)
        WHERE year(date_joined) BETWEEN 2015 AND 2020 GROUP BY ALL""",
    "median_followers_by_join_year": f"""SELECT post_year, quantile_cont(follower_count, 0.5)
        FROM ({PIN_USER}) WHERE post_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL
        GROUP BY ALL""",
    "median_followers_by_age_group_and_join_year": f"""
        SELECT age_group, post_year, quantile_cont(follower_count, 0.5) FROM ({PIN_USER})
        WHERE age_group IS NOT NULL AND post_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL
        GROUP BY ALL""",
}


def duckdb_answers(connection) -> dict[str, list[tuple]]:
    """Every question's rows, from the tables registered on `connection`."""
    return {name: connection.sql(sql).fetchall() for name, sql in DUCKDB_SQL.items()}


def same_row(actual, expected):
    """Equal tuples, floats within rounding (medians are exact, so the tolerance is tight)."""
    return len(actual) == len(expected) and all(
        math.isclose(a, e, rel_tol=1e-12) if isinstance(e, float) else a == e
        for a, e in zip(actual, expected)
    )
