"""The nine batch analytics of docs/architecture.md section 4 (`aggregated/*`), as pure DataFrame functions.

Inputs are the cleaned tables (`pin`, `geo`, `user`), joined on `ind`. The shared rules live in one
place each: `age_group` for the age buckets, `_top_per_group` for "one row per group, highest value
wins, a tie goes to the alphabetically first name", `_median` for exact medians. Every function drops
rows whose grouping or measured value is null before aggregating, so a null never wins a group or
shifts a median, and sorts its output by the group columns so the tables read naturally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

# (label, lowest age, highest age or None for no upper bound), in reading order.
AGE_GROUPS = (("18-24", 18, 24), ("25-35", 25, 35), ("36-50", 36, 50), ("+50", 51, None))
POST_YEARS = (2018, 2022)
JOIN_YEARS = (2015, 2020)


def age_group(age_col: Column | str) -> Column:
    """The age-group label of an age: `18-24`, `25-35`, `36-50`, `+50` (over 50).

    Under 18 and null ages belong to no group and give null, so the aggregates leave them out.
    """
    age = F.col(age_col) if isinstance(age_col, str) else age_col
    label = None
    for name, low, high in AGE_GROUPS:
        condition = age >= low if high is None else age.between(low, high)
        label = F.when(condition, name) if label is None else label.when(condition, name)
    return label


def _age_group_order(group_col: Column) -> Column:
    """Sort key that lists age groups youngest first (alphabetical order would put `+50` first)."""
    return F.array_position(F.array(*[F.lit(name) for name, _, _ in AGE_GROUPS]), group_col)


def _join(left: DataFrame, right: DataFrame) -> DataFrame:
    """Inner join on the post key: a pin counts only where its geo or user row is known."""
    return left.join(right, on="ind", how="inner")


def _non_null(df: DataFrame, *cols: str) -> DataFrame:
    """Drop rows where any of `cols` is null: null groups and measures are left out of every answer."""
    return df.dropna(how="any", subset=list(cols))


def _in_years(df: DataFrame, ts_col: str, years: tuple[int, int]) -> DataFrame:
    """Add `post_year` (int) from a timestamp and keep only the inclusive year range."""
    with_year = df.withColumn("post_year", F.year(ts_col))
    return with_year.where(F.col("post_year").between(*years))


def _with_age_group(df: DataFrame) -> DataFrame:
    """Add `age_group` and drop users who fall in no group (under 18 or unknown age)."""
    return _non_null(df.withColumn("age_group", age_group("age")), "age_group")


def _top_per_group(df: DataFrame, group_cols: list[str], name_col: str, value_col: str) -> DataFrame:
    """One row per group: the highest `value_col`, a tie going to the alphabetically first `name_col`.

    The name breaks ties so that a rebuild gives the same answer every time, whatever the partitioning.
    With no group columns it returns the single top row of the whole frame (a sort and a limit: a window
    with no partition moves every row to one task, and Spark Connect warns of it on every query).
    """
    order = [F.desc(value_col), F.asc(name_col)]
    if not group_cols:
        return df.orderBy(*order).limit(1).select(name_col, value_col)
    ranking = Window.partitionBy(*group_cols).orderBy(*order)
    top = df.withColumn("_rank", F.row_number().over(ranking)).where(F.col("_rank") == 1)
    return top.select(*group_cols, name_col, value_col)


def _top_category(df: DataFrame, group_cols: list[str]) -> DataFrame:
    """Most frequent category (pin count, long) per group."""
    known = _non_null(df, *group_cols, "category")
    counts = known.groupBy(*group_cols, "category").agg(F.count(F.lit(1)).alias("category_count"))
    return _top_per_group(counts, group_cols, "category", "category_count")


def _median(df: DataFrame, group_cols: list[str]) -> DataFrame:
    """Exact median follower count (double) per group.

    `F.median` is Spark's exact percentile, not `percentile_approx`: with an even number of values it
    is the mean of the two middle ones (1, 2, 4, 10 -> 3.0), where the approximation would give 2.
    """
    values = _non_null(df, *group_cols, "follower_count")
    return values.groupBy(*group_cols).agg(F.median("follower_count").alias("median_follower_count"))


def top_category_by_country(pin: DataFrame, geo: DataFrame) -> DataFrame:
    """country, category, category_count: the most popular category in each country."""
    posts = _join(pin.select("ind", "category"), geo.select("ind", "country"))
    return _top_category(posts, ["country"]).orderBy("country")


def top_category_by_year(pin: DataFrame, geo: DataFrame) -> DataFrame:
    """post_year, category, category_count: the most popular category each year 2018-2022 (geo timestamp)."""
    posts = _join(pin.select("ind", "category"), geo.select("ind", "timestamp"))
    return _top_category(_in_years(posts, "timestamp", POST_YEARS), ["post_year"]).orderBy("post_year")


def top_user_by_country(pin: DataFrame, geo: DataFrame) -> DataFrame:
    """country, poster_name, follower_count: the poster with the most followers in each country.

    A poster's follower count is the largest seen on their pins in that country, since a count can
    differ between pins scraped at different times.
    """
    posts = _join(pin.select("ind", "poster_name", "follower_count"), geo.select("ind", "country"))
    known = _non_null(posts, "country", "poster_name", "follower_count")
    posters = known.groupBy("country", "poster_name").agg(F.max("follower_count").alias("follower_count"))
    return _top_per_group(posters, ["country"], "poster_name", "follower_count").orderBy("country")


def top_country_by_followers(pin: DataFrame, geo: DataFrame) -> DataFrame:
    """country, follower_count: the single country whose top poster has the most followers.

    Ranked over the per-country answer (one row per country), so the ungrouped window that picks the
    single row sees a few hundred rows, never the pins.
    """
    return _top_per_group(top_user_by_country(pin, geo), [], "country", "follower_count")


def top_category_by_age_group(pin: DataFrame, user: DataFrame) -> DataFrame:
    """age_group, category, category_count: the most popular category per age group."""
    posts = _with_age_group(_join(pin.select("ind", "category"), user.select("ind", "age")))
    return _top_category(posts, ["age_group"]).orderBy(_age_group_order(F.col("age_group")))


def median_followers_by_age_group(pin: DataFrame, user: DataFrame) -> DataFrame:
    """age_group, median_follower_count: exact median follower count of the pins per poster age group."""
    posts = _with_age_group(_join(pin.select("ind", "follower_count"), user.select("ind", "age")))
    return _median(posts, ["age_group"]).orderBy(_age_group_order(F.col("age_group")))


def users_joined_by_year(user: DataFrame) -> DataFrame:
    """post_year, number_users_joined: distinct users who joined each year 2015-2020.

    A user is (user_name, age, date_joined): one person posting many pins counts once, and a user with
    any of the three unknown cannot be told apart from others, so is not counted.
    """
    identity = ["user_name", "age", "date_joined"]
    users = _in_years(_non_null(user, *identity).select(*identity).distinct(), "date_joined", JOIN_YEARS)
    counts = users.groupBy("post_year").agg(F.count(F.lit(1)).alias("number_users_joined"))
    return counts.orderBy("post_year")


def median_followers_by_join_year(pin: DataFrame, user: DataFrame) -> DataFrame:
    """post_year, median_follower_count: exact median follower count of pins by poster join year 2015-2020."""
    posts = _join(pin.select("ind", "follower_count"), user.select("ind", "date_joined"))
    return _median(_in_years(posts, "date_joined", JOIN_YEARS), ["post_year"]).orderBy("post_year")


def median_followers_by_age_group_and_join_year(pin: DataFrame, user: DataFrame) -> DataFrame:
    """age_group, post_year, median_follower_count: exact median per age group and join year 2015-2020."""
    posts = _join(pin.select("ind", "follower_count"), user.select("ind", "age", "date_joined"))
    posts = _with_age_group(_in_years(posts, "date_joined", JOIN_YEARS))
    medians = _median(posts, ["age_group", "post_year"])
    return medians.orderBy(_age_group_order(F.col("age_group")), "post_year")


class Aggregate(NamedTuple):
    """One analytics table: how it is computed, from which cleaned tables (in argument order), and the
    columns that name its groups (one row per group; none: the table is one row)."""

    compute: Callable[..., DataFrame]
    inputs: tuple[str, ...]
    group_by: tuple[str, ...]


# Asset name -> Aggregate, so the Dagster layer builds the nine assets and their checks from one loop.
AGGREGATES = {
    "top_category_by_country": Aggregate(top_category_by_country, ("pin", "geo"), ("country",)),
    "top_category_by_year": Aggregate(top_category_by_year, ("pin", "geo"), ("post_year",)),
    "top_user_by_country": Aggregate(top_user_by_country, ("pin", "geo"), ("country",)),
    "top_country_by_followers": Aggregate(top_country_by_followers, ("pin", "geo"), ()),
    "top_category_by_age_group": Aggregate(top_category_by_age_group, ("pin", "user"), ("age_group",)),
    "median_followers_by_age_group": Aggregate(median_followers_by_age_group, ("pin", "user"), ("age_group",)),
    "users_joined_by_year": Aggregate(users_joined_by_year, ("user",), ("post_year",)),
    "median_followers_by_join_year": Aggregate(median_followers_by_join_year, ("pin", "user"), ("post_year",)),
    "median_followers_by_age_group_and_join_year": Aggregate(
        median_followers_by_age_group_and_join_year, ("pin", "user"), ("age_group", "post_year"),
    ),
}
