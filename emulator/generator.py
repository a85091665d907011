"""A realistic, deterministic Pinterest source data set (docs/architecture.md section 2).

The real data set is not public. This one reproduces its shape and its dirt: placeholders such as
`User Info Error`, follower counts written `437`, `306k`, `1.5k` or `3M`, `Local save in /data/...`
locations, empty strings, skewed poster popularity. The same seed always gives the same rows; the keys
run from a first id (0 by default) and are 64-bit.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from emulator.vocabulary import (
    ADJECTIVES, CATEGORIES, CATEGORY_WORDS, COUNTRIES, FIRST_NAMES, LAST_NAMES, MEDIA_TYPES,
    POSTER_SUFFIXES,
)

DEFAULT_ROWS = 11_154  # the size of the original data set
MAX_KEY = 2**63 - 1  # the keys are signed 64-bit (BIGINT) columns

# The placeholders the source system writes instead of data; the cleaning rules turn them into nulls.
NO_TITLE = "No Title Data Available"
NO_DESCRIPTIONS = ("No description available Story format", "No description available", "Untitled")
USER_INFO_ERROR = "User Info Error"
NO_TAGS = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"
IMAGE_SRC_ERROR = "Image src error."

# How often each kind of dirt appears (fraction of rows).
DIRT_RATES = {
    "no_title": 0.02,
    "no_description": 0.03,
    "user_info_error": 0.025,
    "no_tags": 0.03,
    "image_src_error": 0.02,
    "blank_text": 0.015,
    "missing_name": 0.01,
}

PIN_TEXT_COLUMNS = ("title", "description", "poster_name", "tag_list", "image_src", "category")
POST_START, POST_END = datetime(2017, 1, 1), datetime(2023, 1, 1)
JOIN_START, JOIN_END = datetime(2015, 1, 1), datetime(2021, 1, 1)


@dataclass(frozen=True)
class Poster:
    name: str
    follower_count: str
    category: str


def format_follower_count(followers: int, rng: random.Random) -> str:
    """Pinterest's display format: plain digits below 1,000, then `k` (sometimes `1.5k`), then `M`."""
    if followers < 1_000:
        return str(followers)
    if followers < 1_000_000:
        if followers < 100_000 and rng.random() < 0.25:
            return f"{followers / 1_000:.1f}k"
        return f"{followers // 1_000}k"
    return f"{followers // 1_000_000}M"


def make_posters(count: int, rng: random.Random) -> list[Poster]:
    """Posters, most popular first: popular accounts have more followers as well as more pins."""
    posters = []
    for i in range(count):
        category = rng.choice(CATEGORIES)
        base = f"{rng.choice(ADJECTIVES).title()} {CATEGORY_WORDS[category][i % 8].title()} {rng.choice(POSTER_SUFFIXES)}"
        name = base if i < 200 else f"{base} {i}"
        # Log-uniform followers from ~10 to ~20M, shifted up for the top of the popularity ranking.
        exponent = rng.uniform(1, 7.3) + (1.0 - i / count) * 0.8
        followers = int(min(10 ** exponent, 25_000_000))
        posters.append(Poster(name, format_follower_count(followers, rng), category))
    return posters


def pick_poster(posters: list[Poster], rng: random.Random) -> Poster:
    """Skewed choice: a few posters post most of the pins, as on the real platform."""
    return posters[int(len(posters) * rng.random() ** 3)]


def random_datetime(start: datetime, end: datetime, rng: random.Random) -> datetime:
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def pin_row(index: int, poster: Poster, rng: random.Random) -> dict:
    category = poster.category if rng.random() < 0.7 else rng.choice(CATEGORIES)
    words = CATEGORY_WORDS[category]
    topic = rng.choice(words)
    uid = uuid.UUID(int=rng.getrandbits(128), version=4)
    row = {
        "index": index,
        "unique_id": str(uid),
        "title": f"{rng.choice(ADJECTIVES).title()} {topic} ideas",
        "description": f"{rng.choice(ADJECTIVES).title()} {topic} and {rng.choice(words)} for your {category} board.",
        "poster_name": poster.name,
        "follower_count": poster.follower_count,
        "tag_list": ",".join(rng.sample(words, rng.randint(3, 6))),
        "is_image_or_video": rng.choices(MEDIA_TYPES, weights=(80, 12, 8))[0],
        "image_src": f"https://i.pinimg.com/originals/{uid.hex[:2]}/{uid.hex[2:4]}/{uid.hex[4:6]}/{uid.hex}.jpg",
        "downloaded": 1,
        "save_location": f"Local save in /data/{category}",
        "category": category,
    }
    add_pin_dirt(row, rng)
    return row


def add_pin_dirt(row: dict, rng: random.Random) -> None:
    if rng.random() < DIRT_RATES["no_title"]:
        row["title"] = NO_TITLE
    if rng.random() < DIRT_RATES["no_description"]:
        row["description"] = rng.choice(NO_DESCRIPTIONS)
    if rng.random() < DIRT_RATES["user_info_error"]:
        row["poster_name"] = row["follower_count"] = USER_INFO_ERROR
    if rng.random() < DIRT_RATES["no_tags"]:
        row["tag_list"] = NO_TAGS
    if rng.random() < DIRT_RATES["image_src_error"]:
        row["image_src"] = IMAGE_SRC_ERROR
        row["downloaded"] = 0
    if rng.random() < DIRT_RATES["blank_text"]:
        row[rng.choice(PIN_TEXT_COLUMNS)] = rng.choice(("", " ", "  "))


def geo_row(ind: int, rng: random.Random) -> dict:
    return {
        "ind": ind,
        "timestamp": random_datetime(POST_START, POST_END, rng),
        "latitude": round(rng.uniform(-90, 90), 6),
        "longitude": round(rng.uniform(-180, 180), 6),
        "country": rng.choice(COUNTRIES) if rng.random() >= DIRT_RATES["blank_text"] else "",
    }


def user_row(ind: int, rng: random.Random) -> dict:
    row = {
        "ind": ind,
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "age": rng.randint(18, 70),
        "date_joined": random_datetime(JOIN_START, JOIN_END, rng),
    }
    if rng.random() < DIRT_RATES["missing_name"]:
        row[rng.choice(("first_name", "last_name"))] = ""
    return row


def generate_posts(rows: int = DEFAULT_ROWS, seed: int = 42, first_id: int = 0) -> Iterator[tuple[dict, dict, dict]]:
    """(pin, geo, user) rows for keys first_id..first_id+rows-1, deterministic for `seed`.

    `first_id` only shifts the keys (real pin ids exceed 2^31): the other values of a seed are the
    same whatever it is, and first_id=0 gives the keys 0..rows-1.
    """
    check_key_range(rows, first_id)
    rng = random.Random(seed)
    posters = make_posters(max(50, rows // 8), rng)
    for key in range(first_id, first_id + rows):
        yield pin_row(key, pick_poster(posters, rng), rng), geo_row(key, rng), user_row(key, rng)


def check_key_range(rows: int, first_id: int) -> None:
    """The keys first_id..first_id+rows-1 must be non-negative and fit the source's signed 64-bit BIGINT."""
    if first_id < 0:
        raise ValueError(f"the first id must be zero or positive, got {first_id}")
    last_id = first_id + rows - 1
    if last_id > MAX_KEY:
        raise ValueError(
            f"the last id {first_id} + {rows} - 1 = {last_id} exceeds the largest 64-bit key {MAX_KEY}; "
            f"the first id can be at most {MAX_KEY - rows + 1} for {rows} rows"
        )
