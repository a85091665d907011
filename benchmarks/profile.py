"""Where the local Spark Connect server's CPU goes: a sampling profile of it over a window of load.

    .venv/bin/python -m benchmarks.profile --after 30 --seconds 40 -- \\
        .venv/bin/python -m benchmarks.streaming latency --rate 333 --seconds 70

Runs the command after `--` (any load: a benchmark, `make demo`...), waits `--after` seconds, then samples
the server that `make up` started (pid in .local/run/spark-connect.pid) for `--seconds` with async-profiler
(`make jars` copies it from Maven Central; the agent is loaded into the running JVM through `jcmd`): every
10 ms of a thread's CPU time it records that thread's stack (`itimer`, which needs no perf_events). Then
it waits for the command and prints the share of the samples in each part of the server's work: the JIT
compilers, garbage collection, executor tasks, Delta's file skipping and commits, Spark's scheduler...
Without a command it samples whatever runs meanwhile. The stacks are written to `--out` (async-profiler's
collapsed format: one line per stack, a flame graph's input).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

from benchmarks.common import is_local_connect_server, local_connect_server_pid, progress
from pinterest_dagster.settings import LOCAL_DIR, REPO_ROOT

PROFILER_JARS = LOCAL_DIR / "jars" / "profiler"
SAMPLE_INTERVAL = "10ms"
# (part, a frame that marks it) in order: a sample counts for the first part one of its frames marks.
# JIT and GC threads are told apart by the first frames of their stacks (the VM's own threads).
PARTS = [
    ("executor tasks", "Executor$TaskRunner.run"),
    ("code generation", "CodeGenerator"),
    ("Delta: file skipping (filterFiles, data skipping)", "DataSkipping"),
    ("Delta: file skipping (filterFiles, data skipping)", "filterFiles"),
    ("Delta: writes and commits", "OptimisticTransaction"),
    ("Delta: log and snapshots", "io/delta/"),
    ("Delta: log and snapshots", "spark/sql/delta/"),
    ("analysis", "Analyzer"),
    ("optimisation and planning", "Optimizer"),
    ("optimisation and planning", "QueryPlanner"),
    ("Spark Connect (planning the client's plans, gRPC)", "spark/sql/connect/"),
    ("Spark Connect (planning the client's plans, gRPC)", "grpc"),
    ("scheduler", "scheduler/"),
]


# The jar carries an agent per platform.
PLATFORMS = {"x86_64": "linux-x64", "aarch64": "linux-arm64"}


def agent_library() -> Path:
    """async-profiler's Linux agent for this machine, taken out of the jar `make jars` copied."""
    if platform.machine() not in PLATFORMS:
        raise SystemExit(f"async-profiler's jar has no agent for {platform.machine()} (only {', '.join(PLATFORMS)})")
    member = f"{PLATFORMS[platform.machine()]}/libasyncProfiler.so"
    library = PROFILER_JARS / member
    if not library.exists():
        jars = sorted(PROFILER_JARS.glob("async-profiler-*.jar"))
        if not jars:
            raise SystemExit(f"async-profiler is not in {PROFILER_JARS}: run `make jars`")
        with zipfile.ZipFile(jars[-1]) as jar:
            jar.extract(member, PROFILER_JARS)
    return library


def server_pid() -> int:
    """The pid of the Connect server `make up` started; refused when SPARK_REMOTE names another one, whose
    load this would not see."""
    remote = os.environ.get("SPARK_REMOTE")
    if remote and not is_local_connect_server(remote):
        raise SystemExit(f"SPARK_REMOTE={remote} is not the local Spark Connect server (sc://127.0.0.1:15002) that "
                         "this samples: unset it or point it there")
    pid = local_connect_server_pid()
    if pid is None:
        raise SystemExit("no local Spark Connect server is running: start it with `make up`")
    if shutil.which("jcmd") is None:
        raise SystemExit("jcmd, which loads the profiler into the server, is not on PATH: it comes with a JDK "
                         "(apt-get install openjdk-17-jdk-headless)")
    return pid


def agent(pid: int, library: Path, command: str, check: bool = True) -> None:
    """Give the agent (`library`) in the server's JVM a command. jcmd would split an unquoted `key=value` list."""
    done = subprocess.run(["jcmd", str(pid), "JVMTI.agent_load", str(library), f'"{command}"'],
                          capture_output=True, text=True)
    if check and (done.returncode != 0 or "return code: 0" not in done.stdout):
        raise SystemExit(f"async-profiler did not take `{command}` (jcmd: {done.stdout.strip()} {done.stderr.strip()}); "
                         "the server's log (.local/logs/spark-connect.log) says why")


def stop_load(load: subprocess.Popen) -> None:
    """Stop whatever the load started that still runs (its process group), the load too if it still runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not leave the group behind
    try:
        os.killpg(load.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # the load and everything it started have ended
    load.wait()


def part_of(frames: list[str]) -> str:
    head = frames[:8]
    if any("CompileBroker" in frame for frame in head):
        return "JIT compilers"
    if any("/" not in frame and ("G1" in frame or "GC" in frame) for frame in head):
        return "garbage collection"
    stack = ";".join(frames)
    for part, marker in PARTS:
        if marker in stack:
            return part
    return "other Java" if any("/" in frame for frame in frames) else "other native (VM, system calls)"


def shares(collapsed: str) -> tuple[int, dict[str, float]]:
    """(samples, the share of each part), from async-profiler's collapsed stacks ("frame;frame;... count")."""
    parts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            parts[part_of(stack.split(";"))] += int(count)
    total = sum(parts.values())
    return total, {part: n / total for part, n in parts.most_common()} if total else {}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="how long to sample")
    parser.add_argument("--after", type=float, default=0, help="seconds between starting the command and sampling")
    parser.add_argument("--out", type=Path, default=LOCAL_DIR / "logs" / "spark-connect-profile.collapsed")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the load to run (optional)")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    pid = server_pid()
    library = agent_library()  # a missing jar fails now, not once the load has run for --after seconds
    # Terminated, it stops the profiler and the load as it does on Ctrl-C: the server outlives both.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"profile: terminated (signal {signal.SIGTERM})"))
    load = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True) if command else None
    try:
        time.sleep(args.after)
        progress(f"profile: sampling the Spark Connect server (pid {pid}) for {args.seconds:g} s")
        # A profile an earlier run left going (killed with SIGKILL) would refuse a start. (With no profile going, the
        # server's log gets a line "Profiler is not active".)
        agent(pid, library, "stop,file=/dev/null", check=False)
        agent(pid, library, f"start,event=itimer,interval={SAMPLE_INTERVAL}")
        try:
            time.sleep(args.seconds)
        finally:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            agent(pid, library, f"stop,file={args.out.resolve()},collapsed")
        if load is not None and load.wait() != 0:
            raise SystemExit(f"the load ({' '.join(command)}) failed ({load.returncode})")
    finally:
        if load is not None:
            stop_load(load)
    samples, parts = shares(args.out.read_text())
    print(f"{samples:,} samples ({samples / 100:.1f} CPU-seconds at one per {SAMPLE_INTERVAL}) "
          f"in {args.seconds:g} s; stacks in {args.out}")
    for part, share in parts.items():
        print(f"{100 * share:5.1f}%  {part}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
