"""The commands the README and docs/ show exist in the code as written.

Every command in an inline code span or a ```bash block is checked against what it names: a `make` target
in the Makefile, a `python -m` module that imports and whose `--help` lists each option the docs pass, an
`infra/stack.sh` verb and service its dispatch handles, a path `pytest` is given, and each PINTEREST_*
variable set in front of a command read by the code. The long-running ones are run elsewhere: `make test`
by CI (`.ci/run`), which then runs `make demo`, `make screenshot`, `make migrate`, `make dev` (until the UI
answers) and the same on PostgreSQL with docs/configuration.md's commands and with the README's remote services
(both checked below to be CI's), the
benchmarks at small sizes with the soak (`make bench-quick SOAK=1`, when it can start within CI's first 50
minutes) and last `make clean`; the benchmarks at full size by `make bench`; the benchmarks' own command lines by
test_benchmark_clis.py or `make bench-quick`.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex
import subprocess
import sys
from functools import cache

import pytest

from pinterest_dagster.settings import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(
    r"^(?P<env>(?:[A-Z][A-Z0-9_]*=\S*\s+)*)(?:time\s+)?"
    r"(?P<program>make|(?:\.venv/bin/)?python -m|\.venv/bin/pytest|infra/stack\.sh)\s+(?P<args>.+)$"
)


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every command of the README and docs/ (inline code, and lines of bash blocks)."""
    found = []
    for path in DOCS:
        text = path.read_text()
        blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
        found += [(path.name, command) for command in (*lines, *inline) if COMMAND.match(command)]
    return found


COMMANDS = documented_commands()


@cache
def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO_ROOT / "Makefile").read_text(), flags=re.M))


@cache
def stack_cases() -> list[str]:
    """The `verb:service` patterns infra/stack.sh's dispatch handles."""
    labels = re.findall(r"^\s+([a-z][a-z0-9:|\s\[\]*-]*)\)", (REPO_ROOT / "infra/stack.sh").read_text(), flags=re.M)
    return [part.strip() for label in labels for part in label.split("|") if ":" in part]


@cache
def help_text(module: str, subcommand: str | None) -> str:
    done = subprocess.run([sys.executable, "-m", module, *([subcommand] if subcommand else []), "--help"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"python -m {module} {subcommand or ''} --help failed:\n{done.stderr[-1500:]}"
    return done.stdout


@cache
def code_text() -> str:
    """Where the project reads its variables: settings, the Makefile and the scripts of infra/."""
    paths = [REPO_ROOT / "pinterest_dagster/settings.py", REPO_ROOT / "Makefile", *(REPO_ROOT / "infra").glob("*.sh")]
    return "\n".join(p.read_text() for p in paths)


def test_the_docs_show_commands():
    assert len(COMMANDS) > 40 and {name for name, _ in COMMANDS} >= {"README.md", "operations.md", "benchmarks.md"}


@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{w}: {c}" for w, c in COMMANDS])
def test_a_documented_command_exists_as_written(where, command):
    check_command(where, command)


def check_command(where: str, command: str) -> None:
    parts = COMMAND.match(command)
    assert parts, f"{where}: `{command}` is not a command these checks know"
    program, args = parts["program"], shlex.split(parts["args"])
    for variable in re.findall(r"(PINTEREST_[A-Z0-9_]+)=", parts["env"]):
        assert variable in code_text(), f"{where}: {variable} is read nowhere in the code"
    if program == "make":
        targets = [a for a in args if "=" not in a and not a.startswith("-")]
        assert targets and set(targets) <= make_targets(), f"{where}: no such make target in `{command}`"
    elif program.endswith("python -m"):
        module, rest = args[0], args[1:]
        if "--" in rest:  # a command it runs (benchmarks.profile): checked as a command of its own
            check_command(where, shlex.join(rest[rest.index("--") + 1:]))
            rest = rest[:rest.index("--")]
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
        options = re.findall(r"--[a-z][a-z0-9-]*", " ".join(rest))  # synopses too: [--posts N | --duration S]
        if options:
            subcommand = rest[0] if rest and not rest[0].startswith("-") else None
            text = help_text(module, subcommand)
            assert all(o in text for o in options), f"{where}: `{command}`: {module} --help does not list {options}"
    elif program.endswith("pytest"):
        paths = [a.split("::")[0] for a in args if not a.startswith("-")]
        assert all((REPO_ROOT / p).exists() for p in paths), f"{where}: `{command}` names a path that is not there"
    else:
        verb, services = args[0], args[1:] or ["kafka"]
        for service in services:
            assert any(fnmatch.fnmatchcase(f"{verb}:{service}", case) for case in stack_cases()), \
                f"{where}: infra/stack.sh does not handle `{verb} {service}`"


def test_ci_runs_the_dagster_on_postgres_commands_as_the_docs_give_them():
    section = (REPO_ROOT / "docs/configuration.md").read_text().split("## Dagster on Postgres", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)[1]
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    commands = [line for line in lines if line and not line.startswith(("#", "apt-get"))]
    ci = [line.strip() for line in (REPO_ROOT / ".ci/run").read_text().splitlines()]
    assert len(commands) == 4 and commands[-1].startswith("make dev ")
    for command in commands[:-1]:
        assert any(line == command or line.startswith(command + " ||") for line in ci), f".ci/run does not run `{command}`"
    # check_make_dev RUN_STORAGE ARGS runs `make dev ARGS`.
    made = re.compile(r"check_make_dev \w+ " + re.escape(commands[-1].removeprefix("make dev ")) + "$")
    assert any(made.search(line) for line in ci), commands[-1]


def test_ci_runs_the_readmes_remote_services_line_as_written():
    """.ci/run exports the line's variables (the database URL, elided in the README, filled in) and runs its
    `make dev` through check_make_dev, which posts events and waits for a micro-batch to succeed."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.S)
             for line in block.splitlines() if line.startswith("KAFKA_BOOTSTRAP_SERVERS=")]
    assert len(lines) == 1 and lines[0].endswith(" make dev"), lines
    variables = dict(part.split("=", 1) for part in lines[0].removesuffix(" make dev").split())
    assert set(variables) == {"KAFKA_BOOTSTRAP_SERVERS", "SOURCE_DB_URL", "SPARK_REMOTE"}
    ci = (REPO_ROOT / ".ci/run").read_text()
    exported = re.search(r"^  export (KAFKA_BOOTSTRAP_SERVERS=.*)$", ci, flags=re.M)[1]
    for name, value in variables.items():
        if value.endswith("..."):
            assert f"{name}=" in exported, f".ci/run does not set {name}"
        else:
            assert f"{name}={value}" in exported.split(), f".ci/run does not export {name}={value}"
    assert re.search(r"^  .*AFTER_UI_ANSWERS=remote_streams check_make_dev SqliteRunStorage$", ci, flags=re.M)
