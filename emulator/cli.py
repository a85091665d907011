"""`python -m emulator seed|post|topics`: seed the source database, post events, create topics."""

from __future__ import annotations

import argparse
import sys
import time

from emulator import generator, source_db
from emulator.posting import ConsoleSink, KafkaSink, PostingStats, load_posts, post_events
from pinterest_dagster.lib import kafka as kafka_lib
from pinterest_dagster.settings import Settings, SettingsError, mask_url


class UsageError(Exception):
    pass


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    seed = commands.add_parser("seed", help="create and fill the three source tables (replacing them)")
    seed.add_argument("--rows", type=positive_int, default=generator.DEFAULT_ROWS, help="rows per table (default %(default)s)")
    seed.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same rows (default %(default)s)")
    seed.add_argument(
        "--first-id", type=non_negative_int, default=0,
        help="key of the first row: keys are FIRST_ID..FIRST_ID+ROWS-1, at most 2^63-1 (default %(default)s)",
    )
    seed.add_argument("--db-url", help="SQLAlchemy URL (default: SOURCE_DB_URL or the local SQLite file)")
    seed.set_defaults(command_parser=seed)  # for errors that involve two arguments (--first-id and --rows)

    post = commands.add_parser("post", help="send posts (pin, geo and user events of one key) to Kafka or the console")
    post.add_argument("--sink", choices=("kafka", "console"), default="kafka")
    limit = post.add_mutually_exclusive_group()
    limit.add_argument("--posts", type=positive_int, help="number of posts to send (default: until --duration or Ctrl-C)")
    limit.add_argument("--duration", type=non_negative_float, help="seconds to post for")
    post.add_argument("--rate", type=non_negative_float, default=10.0, help="posts per second, 0 = no limit (default %(default)s)")
    post.add_argument("--replay", action="store_true", help="send every source row once, in key order, instead of random rows")
    post.add_argument("--seed", type=int, help="random seed for the choice of rows")
    post.add_argument("--db-url", help="SQLAlchemy URL of the source database (default: SOURCE_DB_URL)")
    post.add_argument("--quiet", action="store_true", help="no progress lines")

    commands.add_parser("topics", help="create the pin/geo/user topics if missing")
    return parser


def seed_command(args, settings: Settings) -> int:
    db_url = args.db_url or settings.source_db_url
    engine = source_db.connect(db_url)
    started = time.monotonic()
    source_db.recreate_tables(engine)
    print(f"seeding {args.rows:,} rows per table into {mask_url(db_url)} (seed {args.seed})", file=sys.stderr)
    posts = list(generator.generate_posts(args.rows, args.seed, args.first_id))
    for position, kind in enumerate(source_db.SOURCE_TABLES):
        table = source_db.SOURCE_TABLES[kind][0]
        count = source_db.insert_rows(engine, table, (post[position] for post in posts))
        print(f"  {table.name}: {count:,} rows ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    print(f"seeded 3 tables x {args.rows:,} rows in {time.monotonic() - started:.1f} s")
    return 0


def print_progress(stats: PostingStats) -> None:
    print(f"  {stats.posts:,} posts, {stats.events:,} events, {stats.events / stats.elapsed:,.0f} events/s", file=sys.stderr)


def post_command(args, settings: Settings) -> int:
    db_url = args.db_url or settings.source_db_url
    source = load_posts(source_db.connect(db_url))
    if not source.keys:
        raise UsageError(f"the source database {mask_url(db_url)} has no rows: run `python -m emulator seed` first")
    if args.sink == "kafka":
        kafka_lib.ensure_topics(settings)
        stats = PostingStats()
        sink = KafkaSink(kafka_lib.make_producer(settings), settings.topics, stats)
        where = f"Kafka {settings.kafka_bootstrap_servers}"
    else:
        stats = PostingStats()
        sink = ConsoleSink(settings.topics)
        where = "the console"
    rate = "no limit" if args.rate == 0 else f"{args.rate:g} posts/s"
    print(f"posting to {where} from {len(source):,} source posts ({rate})", file=sys.stderr)
    stats.started = time.monotonic()
    try:
        post_events(
            source, sink, stats, posts=args.posts, duration_s=args.duration, rate=args.rate,
            replay=args.replay, seed=args.seed, progress=None if args.quiet else print_progress,
        )
    except KeyboardInterrupt:
        print("interrupted: flushing what was sent", file=sys.stderr)
    finally:
        sink.close()
    return report(stats)


def report(stats: PostingStats) -> int:
    elapsed = stats.elapsed
    failed = sum(stats.failed.values())
    per_topic = ", ".join(f"{kind} {stats.sent[kind] - stats.failed[kind]:,}" for kind in stats.sent)
    print(
        f"posted {stats.posts:,} posts: {stats.events - failed:,} events delivered ({per_topic}), "
        f"{failed:,} failed, in {elapsed:.1f} s ({stats.events / max(elapsed, 1e-9):,.0f} events/s)",
        file=sys.stderr,
    )
    for error in stats.errors:
        print(f"  delivery error: {error}", file=sys.stderr)
    return 1 if failed else 0


def topics_command(args, settings: Settings) -> int:
    created = kafka_lib.ensure_topics(settings)
    existing = sorted(set(settings.topics.values()) - set(created))
    print(f"created: {', '.join(created) or 'none'}; already there: {', '.join(existing) or 'none'}")
    return 0


COMMANDS = {"seed": seed_command, "post": post_command, "topics": topics_command}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "seed":
        try:
            generator.check_key_range(args.rows, args.first_id)
        except ValueError as exc:
            args.command_parser.error(f"argument --first-id: {exc}")  # usage, message, exit status 2
    try:
        return COMMANDS[args.command](args, Settings.from_env())
    except (source_db.SourceDatabaseError, kafka_lib.KafkaUnavailableError, SettingsError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
