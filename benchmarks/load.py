"""A lean load generator for the soak: the emulator's posts, sent by librdkafka instead of kafka-python.

    .venv/bin/python -m benchmarks.load --rate 3867 --duration 1200

On the 2-core machine the soak runs on, everything shares the cores: the emulator (kafka-python, pure
Python) spends 88% of a core posting 11,600 events/s, this one (confluent-kafka, librdkafka's C producer)
23% (2026-12-04: the same loop with either producer, posting at that rate for 20 s, CPU time from the first
send to the end of the flush, which this command reports for itself).
The soak measures whether the pipeline keeps up, and producers run on machines of their own in production,
so it posts with this one unless told otherwise (`python -m benchmarks.soak --poster emulator`).

What is posted is what the emulator posts: random rows of the source database (SOURCE_DB_URL; for a
`--seed`, the same rows in the same order, which `pinterest_dagster_tests/emulator/test_posting.py`
checks), each post a pin, a geolocation and a user event of one key, encoded by the emulator's code
(`load_posts`), each key to the partition Kafka's default partitioner gives it (the emulator's
`default_partition`), at `--rate` posts/s for `--duration` seconds or `--posts` posts. Delivery is
confirmed as the emulator's is (acks=all, idempotence); any failed delivery fails the command, with the
first errors, after the flush.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer

from emulator import source_db
from emulator.posting import KINDS, SourcePosts, choose_posts, default_partition, load_posts
from pinterest_dagster.settings import Settings, mask_url

# The emulator's producer settings (lib/kafka.py make_producer), in librdkafka's names.
PRODUCER_CONFIG = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.size": 256 * 1024,
    "max.in.flight.requests.per.connection": 5,
    "request.timeout.ms": 15_000,
    "delivery.timeout.ms": 60_000,
}


class Poster:
    """Sends (kind, key, payload) to the settings' topics; counts delivered and failed messages."""

    def __init__(self, settings: Settings):
        if settings.kafka_security.protocol != "PLAINTEXT":
            raise SystemExit("benchmarks.load posts to a PLAINTEXT broker only (the local stack's): "
                             "use `python -m emulator post` for a secured one")
        self.topics = settings.topics
        self.broken: str | None = None  # set when librdkafka reports every broker down or a fatal error
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, **PRODUCER_CONFIG,
                                  "error_cb": self._on_error})
        metadata = self.producer.list_topics(timeout=10)
        missing = [t for t in self.topics.values() if t not in metadata.topics or metadata.topics[t].error]
        if missing:
            raise SystemExit(f"no such topics on {settings.kafka_bootstrap_servers}: {', '.join(missing)} "
                             "(`python -m emulator topics` creates them)")
        self.partitions = {kind: len(metadata.topics[topic].partitions) for kind, topic in self.topics.items()}
        self.delivered, self.failed, self.errors = 0, 0, []

    def _on_delivery(self, error: KafkaError | None, _message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(str(error))

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.broken = str(error)

    def send(self, kind: str, key: bytes, value: bytes, partition: int) -> None:
        while True:
            try:
                self.producer.produce(self.topics[kind], value=value, key=key, partition=partition,
                                      on_delivery=self._on_delivery)
                break
            except BufferError:  # librdkafka's queue is full: let it deliver, then try again
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self) -> int:
        """Waits for every message to be delivered or to fail; returns how many neither did."""
        # Longer than delivery.timeout.ms: by then librdkafka has reported every message one way or the other.
        return self.producer.flush(PRODUCER_CONFIG["delivery.timeout.ms"] / 1000 + 15)


def source_posts(settings: Settings) -> SourcePosts:
    """The source database's posts, or an error that says to seed it."""
    try:
        source = load_posts(source_db.connect(settings.source_db_url))
    except source_db.SourceDatabaseError as error:
        raise SystemExit(str(error)) from None
    if not source.keys:
        raise SystemExit(f"the source database {mask_url(settings.source_db_url)} has no rows: "
                         "run `python -m emulator seed` first")
    return source


def post(settings: Settings, rate: float, duration_s: float | None = None, posts: int | None = None,
         seed: int | None = None) -> tuple[int, float, float]:
    """Post at `rate` posts/s (0: no limit) for `duration_s` or `posts` posts; (events delivered, seconds and CPU
    seconds of this process from the first send to the end of the flush)."""
    source = source_posts(settings)
    poster = Poster(settings)
    partition_of = {kind: [default_partition(k, poster.partitions[kind]) for k in source.keys] for kind in KINDS}
    started, cpu_started = time.monotonic(), time.process_time()
    deadline = started + duration_s if duration_s is not None else None
    sent = 0
    try:
        for position in choose_posts(len(source), replay=False, posts=posts, rng=random.Random(seed)):
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or poster.broken:
                break
            if rate > 0 and (due := started + sent / rate) > now:
                time.sleep(due - now)
            for kind in KINDS:
                poster.send(kind, source.keys[position], source.payloads[kind][position], partition_of[kind][position])
            sent += 1
    except KeyboardInterrupt:
        print("interrupted: flushing what was sent", file=sys.stderr)
    undelivered = poster.flush()
    problems = [f"{poster.failed:,} of {sent * 3:,} events failed" if poster.failed else "",
                f"{undelivered:,} still undelivered" if undelivered else "", f"Kafka: {poster.broken}" if poster.broken else ""]
    if any(problems):
        raise SystemExit("; ".join(filter(None, problems)) + (f" ({'; '.join(poster.errors)})" if poster.errors else ""))
    return poster.delivered, time.monotonic() - started, time.process_time() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, required=True, help="posts per second (3 events each), 0 = no limit")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--duration", type=float, help="seconds to post for")
    amount.add_argument("--posts", type=int, help="number of posts to send")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the choice of rows (as the emulator's)")
    args = parser.parse_args()
    if args.rate < 0 or any(value is not None and value <= 0 for value in (args.duration, args.posts)):
        parser.error("--rate must be 0 or more, --duration and --posts positive")
    settings = Settings.from_env()
    try:
        events, seconds, cpu = post(settings, args.rate, args.duration, args.posts, args.seed)
    except KafkaException as error:
        raise SystemExit(f"Kafka at {settings.kafka_bootstrap_servers}: {error}") from None
    print(f"posted {events:,} events in {seconds:.1f} s ({events / seconds:,.0f} events/s); "
          f"CPU {cpu:.1f} s ({cpu / seconds:.0%} of a core)", file=sys.stderr)


if __name__ == "__main__":
    main()
