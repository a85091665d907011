"""`python -m pinterest_dagster.demo`: what `make demo` prints after posting events."""

from __future__ import annotations

from pinterest_dagster.lib.kafka import end_offsets
from pinterest_dagster.settings import Settings


def topic_counts(settings: Settings) -> dict[str, int]:
    """Events in each topic (sum of end offsets over its partitions; topics are never compacted)."""
    counts = dict.fromkeys(settings.topics.values(), 0)
    for tp, offset in end_offsets(settings, list(counts)).items():
        counts[tp.topic] += offset
    return counts


def main() -> None:
    settings = Settings.from_env()
    print(f"events per topic on {settings.kafka_bootstrap_servers}:")
    for topic, count in topic_counts(settings).items():
        print(f"  {topic:<24} {count:>10,}")


if __name__ == "__main__":
    main()
