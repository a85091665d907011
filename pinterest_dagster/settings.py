"""The one place that reads the environment (DESIGN.md section 6).

Everything else receives a `Settings` object, so a test or a deployment changes behaviour by
building a different `Settings`, never by patching globals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / ".local"
TOPIC_KINDS = ("pin", "geo", "user")


@dataclass(frozen=True)
class Settings:
    lake_root: str = str(LOCAL_DIR / "lake")
    kafka_bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = "pinterest"
    source_db_url: str = f"sqlite:///{LOCAL_DIR / 'pinterest.db'}"
    spark_remote: str | None = None
    spark_master: str = "local[*]"
    jars_dir: Path = field(default=LOCAL_DIR / "jars")
    max_records_per_run: int = 1_000_000

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            lake_root=env.get("PINTEREST_LAKE_ROOT") or defaults.lake_root,
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or defaults.kafka_bootstrap_servers,
            topic_prefix=env.get("PINTEREST_TOPIC_PREFIX") or defaults.topic_prefix,
            source_db_url=env.get("SOURCE_DB_URL") or defaults.source_db_url,
            spark_remote=env.get("SPARK_REMOTE") or None,
            spark_master=env.get("SPARK_MASTER") or defaults.spark_master,
            jars_dir=Path(env["PINTEREST_JARS_DIR"]) if env.get("PINTEREST_JARS_DIR") else defaults.jars_dir,
            max_records_per_run=int(env.get("PINTEREST_MAX_RECORDS_PER_RUN") or defaults.max_records_per_run),
        )

    def topic(self, kind: str) -> str:
        """Topic name for one event kind (`pin`, `geo` or `user`)."""
        if kind not in TOPIC_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}")
        return f"{self.topic_prefix}.{kind}"

    @property
    def topics(self) -> dict[str, str]:
        return {kind: self.topic(kind) for kind in TOPIC_KINDS}

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.lake_root.rstrip('/')}/{layer}/{name}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))
