"""Which local services `make up` starts: those the settings point at on this machine, never one that
stands in for a remote Kafka, database or Spark.

    python -m pinterest_dagster.local_stack   prints the services to start (`infra/stack.sh up ...`);
                                              says on stderr which remote ones it leaves alone
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from pinterest_dagster.settings import Settings, is_loopback, mask_url


def remote_services(settings: Settings) -> dict[str, str]:
    """The stack's services that the settings point away from this machine, each with the reason."""
    remote = {}
    hosts = [server.strip().rpartition(":")[0] or server.strip() for server in settings.kafka_bootstrap_servers.split(",")]
    if not all(is_loopback(host) for host in hosts):
        remote["kafka"] = f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}"
    database_host = urlsplit(settings.source_db_url).hostname  # None for SQLite, a file
    if database_host and not is_loopback(database_host):
        remote["mariadb"] = f"SOURCE_DB_URL={mask_url(settings.source_db_url)}"
    if settings.spark_remote and not settings.spark_is_local:
        remote["spark-connect"] = f"SPARK_REMOTE={settings.spark_remote}"
    return remote


def local_services(settings: Settings) -> list[str]:
    """The services `make up` starts: MariaDB too when the source is SQLite, for the tests of the MySQL source."""
    remote = remote_services(settings)
    return [service for service in ("kafka", "mariadb", "spark-connect") if service not in remote]


def main() -> int:
    settings = Settings.from_env()
    for service, reason in remote_services(settings).items():
        print(f"{service}: not started here, the settings point elsewhere ({reason})", file=sys.stderr)
    print(" ".join(local_services(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
