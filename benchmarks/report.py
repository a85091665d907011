"""Results of one benchmark run: the machine, the versions, every figure (JSON) and a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from benchmarks.common import Comparison

RESULTS_DIR = Path(__file__).resolve().parent / "results"
README_BLOCK = re.compile(r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)", re.DOTALL)
PACKAGES = ("pyspark", "delta-spark", "dagster", "duckdb", "kafka-python")


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        **{name: version(name) for name in PACKAGES},
    }


def format_figure(value) -> str:
    """A figure for the Markdown table: thousands separated, two decimals below 100, "-" for one not measured
    (a soak too short for two clean-ups has no growth between them)."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(format_figure(v) for v in value) + "]"
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def markdown_table(comparisons: list[Comparison], mode: str, when: datetime, host: dict) -> str:
    lines = [
        f"{mode} run of {when:%Y-%m-%d %H:%M} UTC on {host['cores']} cores, {host['memory_gib']} GiB "
        f"(load average at start {host['load_average_at_start'][0]:.1f}); ratios are measured in this one run.",
        "",
        "| benchmark | figures | parameters | ratio (Dagster side / other) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        figures = ", ".join(f"{k} {format_figure(v)}" for k, v in c.figures.items() if not isinstance(v, list))
        parameters = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in c.parameters.items())
        met = {True: "met", False: "**not met**", None: "-"}[c.met]
        lines.append(f"| {c.question} | {figures} | {parameters} | {c.ratio:.2f} | {c.target_shown} | {met} |")
    return "\n".join(lines) + "\n"


def write_results(comparisons: list[Comparison], mode: str, parameters: dict, readme: Path | None,
                  label: str = "") -> Path:
    """benchmarks/results/<UTC date><label>.json and .md; the README's marked block too when `readme` is given.

    `label` tells a quick or partial run's files from the full run's (e.g. "-quick", "-batch").
    """
    when = datetime.now(timezone.utc)
    host = machine()
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"{when:%Y-%m-%d}{label}"
    document = {"when": when.isoformat(), "mode": mode, "machine": host, "parameters": parameters,
                "benchmarks": [c.as_dict() for c in comparisons]}
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    table = markdown_table(comparisons, mode, when, host)
    stem.with_suffix(".md").write_text(f"# Benchmarks, {when:%Y-%m-%d}\n\n{table}")
    if readme is not None:
        replace_readme_block(readme, table)
    return stem.with_suffix(".json")


def replace_readme_block(readme: Path, table: str) -> None:
    text = readme.read_text()
    if not README_BLOCK.search(text):
        raise ValueError(f"{readme} has no <!-- bench:start --> ... <!-- bench:end --> block to rewrite")
    readme.write_text(README_BLOCK.sub(lambda m: m.group(1) + table + m.group(2), text))
