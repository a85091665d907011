"""The aggregated analytics (docs/architecture.md section 4): one tiny hand-built case per rule, then every
aggregate checked against an independent DuckDB SQL computation over a generated data set with planted
ties, nulls, missing rows, out-of-range years and boundary ages."""

from __future__ import annotations

import inspect
import random
from datetime import datetime, timedelta

import duckdb
import pytest

from pinterest_dagster.transforms.aggregate import AGGREGATES, age_group
from benchmarks.duckdb_reference import duckdb_answers, same_row

pytestmark = pytest.mark.spark

PIN_SCHEMA = (
    "ind int, unique_id string, title string, description string, follower_count bigint, "
    "poster_name string, tag_list string, is_image_or_video string, image_src string, "
    "save_location string, category string, downloaded int"
)
GEO_SCHEMA = "ind int, country string, coordinates array<double>, timestamp timestamp"
USER_SCHEMA = "ind int, user_name string, age int, date_joined timestamp"

DEFAULT_POST = {
    "category": "art",
    "poster_name": "alice",
    "follower_count": 100,
    "country": "France",
    "timestamp": datetime(2020, 6, 1),
    "user_name": "Ann Lee",
    "age": 30,
    "date_joined": datetime(2017, 6, 1),
    "missing": (),  # names of the tables ("pin", "geo", "user") that have no row for this post
}

EXPECTED_SCHEMAS = {
    "top_category_by_country": "country:string, category:string, category_count:bigint",
    "top_category_by_year": "post_year:int, category:string, category_count:bigint",
    "top_user_by_country": "country:string, poster_name:string, follower_count:bigint",
    "top_country_by_followers": "country:string, follower_count:bigint",
    "top_category_by_age_group": "age_group:string, category:string, category_count:bigint",
    "median_followers_by_age_group": "age_group:string, median_follower_count:double",
    "users_joined_by_year": "post_year:int, number_users_joined:bigint",
    "median_followers_by_join_year": "post_year:int, median_follower_count:double",
    "median_followers_by_age_group_and_join_year": (
        "age_group:string, post_year:int, median_follower_count:double"
    ),
}
AGE_GROUP_ORDER = ["18-24", "25-35", "36-50", "+50"]


def tables_from_posts(spark, posts):
    """Cleaned pin, geo and user tables holding one row each per post (dicts overriding DEFAULT_POST)."""
    rows = {"pin": [], "geo": [], "user": []}
    for ind, overrides in enumerate(posts, start=1):
        post = {**DEFAULT_POST, **overrides}
        category = post["category"]
        rows["pin"].append((
            ind, f"uuid-{ind}", "a title", "a description", post["follower_count"], post["poster_name"],
            "tag,list", "image", "https://i.example/x.jpg", f"/data/{category}", category, 1,
        ))
        rows["geo"].append((ind, post["country"], [45.0, 7.5], post["timestamp"]))
        rows["user"].append((ind, post["user_name"], post["age"], post["date_joined"]))
        for table in post["missing"]:
            rows[table].pop()
    schemas = {"pin": PIN_SCHEMA, "geo": GEO_SCHEMA, "user": USER_SCHEMA}
    return {name: spark.createDataFrame(rows[name], schemas[name]) for name in rows}


def run(name, tables):
    function, inputs, _ = AGGREGATES[name]
    return function(*(tables[table] for table in inputs))


def collect(df):
    return [tuple(row) for row in df.collect()]


# --- one rule per test, on tiny tables -------------------------------------------------------------


def test_age_group_boundaries_and_no_group_under_18_or_unknown(spark):
    ages = [17, 18, 24, 25, 35, 36, 50, 51, 90, 0, None]
    df = spark.createDataFrame([(age,) for age in ages], "age int")
    labels = [row[0] for row in df.select(age_group("age")).collect()]
    assert labels == [None, "18-24", "18-24", "25-35", "25-35", "36-50", "36-50", "+50", "+50", None, None]


def test_top_category_by_country_tie_goes_to_alphabetically_first_category(spark):
    posts = [
        *[{"country": "France", "category": c} for c in ["travel", "art", "travel", "art", "beauty"]],
        *[{"country": "Spain", "category": c} for c in ["vehicles", "vehicles", "quotes"]],
    ]
    result = collect(run("top_category_by_country", tables_from_posts(spark, posts)))
    assert result == [("France", "art", 2), ("Spain", "vehicles", 2)]


def test_top_category_by_country_leaves_out_null_country_null_category_and_unjoined_pins(spark):
    posts = [
        {"country": "France", "category": "art"},
        *[{"country": "France", "category": None}] * 3,
        *[{"country": None, "category": "travel"}] * 3,
        *[{"country": "France", "category": "travel", "missing": ("geo",)}] * 3,
    ]
    result = collect(run("top_category_by_country", tables_from_posts(spark, posts)))
    assert result == [("France", "art", 1)]


def test_top_category_by_year_only_2018_to_2022_by_utc_post_timestamp(spark):
    posts = [
        {"timestamp": datetime(2017, 12, 31, 23, 59, 59), "category": "travel"},
        {"timestamp": datetime(2018, 1, 1, 0, 0, 0), "category": "quotes"},
        {"timestamp": datetime(2022, 12, 31, 23, 59, 59), "category": "tattoos"},
        {"timestamp": datetime(2022, 3, 1), "category": "beauty"},
        {"timestamp": datetime(2023, 1, 1, 0, 0, 0), "category": "travel"},
        {"timestamp": None, "category": "travel"},
    ]
    result = collect(run("top_category_by_year", tables_from_posts(spark, posts)))
    assert result == [(2018, "quotes", 1), (2022, "beauty", 1)]


def test_top_user_by_country_takes_each_posters_max_in_that_country_and_breaks_ties_by_name(spark):
    posts = [
        {"country": "France", "poster_name": "carol", "follower_count": 500},
        {"country": "France", "poster_name": "bob", "follower_count": 100},
        {"country": "France", "poster_name": "bob", "follower_count": 500},
        {"country": "France", "poster_name": None, "follower_count": 900},
        {"country": "Spain", "poster_name": "bob", "follower_count": 10_000},
        {"country": "Spain", "poster_name": "dave", "follower_count": 50},
        {"country": "Chad", "poster_name": "erin", "follower_count": None},
    ]
    result = collect(run("top_user_by_country", tables_from_posts(spark, posts)))
    assert result == [("France", "bob", 500), ("Spain", "bob", 10_000)]


def test_top_country_by_followers_is_one_row_and_a_tie_goes_to_the_first_country(spark):
    posts = [
        {"country": "Zambia", "poster_name": "zed", "follower_count": 1_000},
        {"country": "Albania", "poster_name": "amy", "follower_count": 1_000},
        {"country": "France", "poster_name": "bob", "follower_count": 900},
        {"country": None, "poster_name": "max", "follower_count": 5_000},
        {"country": "Chad", "poster_name": None, "follower_count": 5_000},
    ]
    table = run("top_country_by_followers", tables_from_posts(spark, posts))
    assert collect(table) == [("Albania", 1_000)]
    # The one window is top_user_by_country's, per country: the top row overall is a sort and a limit, not a
    # window over one partition of everything (which Spark Connect warns of on every query).
    assert table._jdf.queryExecution().optimizedPlan().toString().count("Window [") == 1


def test_top_category_by_age_group_leaves_out_under_18_and_unknown_ages(spark):
    posts = [
        *[{"age": 17, "category": "travel"}] * 3,
        *[{"age": None, "category": "travel"}] * 3,
        {"age": 18, "category": "beauty"},
        {"age": 24, "category": "art"},
        {"age": 51, "category": "vehicles"},
    ]
    result = collect(run("top_category_by_age_group", tables_from_posts(spark, posts)))
    assert result == [("18-24", "art", 1), ("+50", "vehicles", 1)]


def test_median_followers_by_age_group_is_exact_mean_of_the_two_middle_values(spark):
    posts = [
        *[{"age": 30, "follower_count": n} for n in [10, 1, 4, 2, None]],  # approximate gives 2
        *[{"age": 40, "follower_count": n} for n in [5, 100, 7]],
        {"age": 17, "follower_count": 1_000},
    ]
    result = collect(run("median_followers_by_age_group", tables_from_posts(spark, posts)))
    assert result == [("25-35", 3.0), ("36-50", 7.0)]


def test_users_joined_by_year_counts_distinct_complete_users_who_joined_2015_to_2020(spark):
    ann = {"user_name": "Ann Lee", "age": 30, "date_joined": datetime(2016, 5, 1)}
    posts = [
        ann, ann, ann,
        {**ann, "date_joined": datetime(2016, 9, 1)},
        {**ann, "user_name": None}, {**ann, "age": None}, {**ann, "date_joined": None},
        {**ann, "date_joined": datetime(2014, 12, 31, 23, 59, 59)},
        {**ann, "date_joined": datetime(2015, 1, 1)},
        {**ann, "date_joined": datetime(2020, 12, 31, 23, 59, 59)},
        {**ann, "date_joined": datetime(2021, 1, 1)},
    ]
    result = collect(run("users_joined_by_year", tables_from_posts(spark, posts)))
    assert result == [(2015, 1), (2016, 2), (2020, 1)]


def test_median_followers_by_join_year_only_2015_to_2020_and_exact(spark):
    posts = [
        *[{"date_joined": datetime(2015, 1, 1), "follower_count": n} for n in [10, 20, None]],
        *[{"date_joined": datetime(2020, 7, 1), "follower_count": n} for n in [3, 1, 1_000_001]],
        {"date_joined": datetime(2014, 12, 31), "follower_count": 5},
        {"date_joined": datetime(2021, 1, 1), "follower_count": 5},
    ]
    result = collect(run("median_followers_by_join_year", tables_from_posts(spark, posts)))
    assert result == [(2015, 15.0), (2020, 3.0)]


def test_median_followers_by_age_group_and_join_year_needs_both_groups(spark):
    joined_2018 = datetime(2018, 2, 1)
    posts = [
        *[{"age": 25, "date_joined": joined_2018, "follower_count": n} for n in [1, 2]],
        {"age": 60, "date_joined": joined_2018, "follower_count": 8},
        {"age": 60, "date_joined": datetime(2019, 2, 1), "follower_count": 9},
        {"age": 17, "date_joined": joined_2018, "follower_count": 5},
        {"age": 25, "date_joined": datetime(2022, 1, 1), "follower_count": 5},
        {"age": 25, "date_joined": joined_2018, "follower_count": None},
    ]
    result = collect(run("median_followers_by_age_group_and_join_year", tables_from_posts(spark, posts)))
    assert result == [("25-35", 2018, 1.5), ("+50", 2018, 8.0), ("+50", 2019, 9.0)]


def test_aggregates_name_the_nine_assets_and_each_functions_input_tables():
    assert list(AGGREGATES) == list(EXPECTED_SCHEMAS)
    for name, (function, inputs, _) in AGGREGATES.items():
        assert function.__name__ == name
        assert tuple(inspect.signature(function).parameters) == inputs


# --- every aggregate against DuckDB on a generated data set --------------------------------------

CATEGORIES = [
    "art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance",
    "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles",
]
COUNTRIES = ["France", "Spain", "Chile", "Japan", "Kenya", "Peru", "India", "Egypt"]
RARE_COUNTRIES = ["Malta", "Nauru", "Tonga", "Palau", "Fiji", "Samoa"]  # one or two posts: ties
FOLLOWER_COUNTS = [0, 5, 120, 437, 1_500, 306_000, 3_000_000]  # repeated values tie posters
POST_YEARS = [2016, 2017, 2018, 2020, 2021, 2022, 2023]  # 2019 is planted below
JOIN_YEARS = range(2013, 2023)
AGES = [None, 10, 16, 17, 18, 24, 25, 35, 51, 70, *range(19, 35), *range(52, 76)]  # 36-50 planted


def maybe_null(rng, value, rate=0.04):
    return None if rng.random() < rate else value


def random_moment(rng, year):
    """A time in `year`, often exactly on its first or last second, where an off-by-one would show."""
    start = datetime(year, 1, 1)
    end = datetime(year + 1, 1, 1) - timedelta(seconds=1)
    choice = rng.random()
    if choice < 0.05:
        return start
    if choice < 0.1:
        return end
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def random_user(rng, ages):
    name = f"{rng.choice(['Ann', 'Bo', 'Cy', 'Di'])} {rng.choice(['Lee', 'Kim', 'Ng'])}"
    joined = random_moment(rng, rng.choice(JOIN_YEARS))
    return {
        "user_name": maybe_null(rng, name),
        "age": maybe_null(rng, rng.choice(ages)),
        "date_joined": maybe_null(rng, joined),
    }


def random_post(rng, users):
    country_pool = rng.choices([COUNTRIES, RARE_COUNTRIES], weights=[0.995, 0.005])[0]
    followers = rng.choice(FOLLOWER_COUNTS) if rng.random() < 0.5 else rng.randrange(2_000_000)
    return {
        "category": maybe_null(rng, rng.choice(CATEGORIES)),
        "poster_name": maybe_null(rng, f"poster_{int(rng.paretovariate(1.2)) % 90:02d}"),
        "follower_count": maybe_null(rng, followers, rate=0.06),
        "country": maybe_null(rng, rng.choice(country_pool)),
        "timestamp": maybe_null(rng, random_moment(rng, rng.choice(POST_YEARS))),
        **rng.choice(users),
        "missing": tuple(t for t in ("pin", "geo", "user") if rng.random() < 0.02),
    }


def planted_posts(rng, users):
    """Posts whose answers are known in advance: ties at the top of a group, and nulls that would win."""

    def post(**fields):
        return {**random_post(rng, users), "missing": (), **fields}

    middle_aged = [random_user(rng, [36, 43, 50]) for _ in range(5)]
    return [
        # 2019: travel and beauty tie at 30, the null category would win if counted.
        *[post(timestamp=random_moment(rng, 2019), category=c)
          for c in ["travel", "beauty"] * 30 + [None] * 40],
        # Andorra: art and travel tie at 2, amy and zoe at 7000 followers; nulls would win both.
        *[post(country="Andorra", category=c, poster_name=None)
          for c in ["travel", "art", "travel", "art", "beauty"]],
        *[post(country="Andorra", category=None, poster_name=p, follower_count=n)
          for p, n in [("zoe", 7_000), ("amy", 7_000), ("bob", 6_000), ("bob", None), (None, 8_000)]],
        # Zimbabwe and Albania tie for the most-followed top poster; the nulls would beat both.
        post(country="Zimbabwe", poster_name="max", follower_count=99_000_000),
        post(country="Albania", poster_name="kim", follower_count=99_000_000),
        post(country=None, poster_name="joe", follower_count=100_000_000),
        post(country="Chad", poster_name=None, follower_count=100_000_000),
        # 36-50: diy-and-crafts and education tie at 13.
        *[post(category=c, **rng.choice(middle_aged) | {"age": rng.choice([36, 43, 50])})
          for c in ["education", "diy-and-crafts"] * 13],
    ]


@pytest.fixture(scope="module")
def generated(spark):
    rng = random.Random(20240611)
    users = [random_user(rng, AGES) for _ in range(300)]
    posts = [random_post(rng, users) for _ in range(3_000)] + planted_posts(rng, users)
    return tables_from_posts(spark, posts)


@pytest.fixture(scope="module")
def spark_results(generated):
    results = {}
    for name in AGGREGATES:
        df = run(name, generated)
        schema = ", ".join(f"{f.name}:{f.dataType.simpleString()}" for f in df.schema.fields)
        results[name] = (schema, collect(df))
    return results


@pytest.fixture(scope="module")
def duckdb_results(generated):
    connection = duckdb.connect()
    for name, df in generated.items():
        # Nullable pandas dtypes keep a null integer null, rather than a NaN float.
        frame = df.drop("coordinates").toPandas().convert_dtypes()
        connection.register("users" if name == "user" else name, frame)
    return duckdb_answers(connection)


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_aggregate_matches_independent_duckdb_computation(name, spark_results, duckdb_results):
    actual = sorted(spark_results[name][1])
    expected = sorted(duckdb_results[name])
    assert actual, "the generated data must give every aggregate some rows"
    assert len(actual) == len(expected)
    for actual_row, expected_row in zip(actual, expected):
        assert same_row(actual_row, expected_row), (actual_row, expected_row)


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_aggregate_has_the_contract_columns_and_types(name, spark_results):
    assert spark_results[name][0] == EXPECTED_SCHEMAS[name]


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_aggregate_rows_are_sorted_by_group_youngest_age_group_first(name, spark_results):
    rows = spark_results[name][1]
    columns = [column.split(":")[0] for column in EXPECTED_SCHEMAS[name].split(", ")]
    group_columns = [c for c in columns if c in ("country", "post_year", "age_group")]
    if name == "top_country_by_followers":
        group_columns = []

    def key(row):
        return [AGE_GROUP_ORDER.index(row[columns.index(c)]) if c == "age_group" else row[columns.index(c)]
                for c in group_columns]

    assert rows == sorted(rows, key=key)


def test_generated_data_plants_the_ties_it_claims(spark_results):
    """Guards the DuckDB comparison: the planted ties and nulls really are in the answers."""
    results = {name: rows for name, (_, rows) in spark_results.items()}
    assert (2019, "beauty", 30) in results["top_category_by_year"]
    assert ("Andorra", "art", 2) in results["top_category_by_country"]
    assert ("Andorra", "amy", 7_000) in results["top_user_by_country"]
    assert results["top_country_by_followers"] == [("Albania", 99_000_000)]
    assert ("36-50", "diy-and-crafts", 13) in results["top_category_by_age_group"]
    assert {year for year, _ in results["users_joined_by_year"]} == set(range(2015, 2021))
