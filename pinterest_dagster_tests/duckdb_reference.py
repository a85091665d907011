"""The nine analytics questions answered independently, in DuckDB SQL, to check the Spark answers.

The SQL shares no code with `pinterest_dagster.transforms.aggregate`: "top" is the group's maximum
joined back and the first name reaching it (no ranking), medians are DuckDB's `quantile_cont`.
Tables are registered as `pin`, `geo` and `users` (`user` is a keyword).
"""

from __future__ import annotations

import math

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
