"""Run launchers for runs on this machine, which can tell when a run's process died.

- `LocalProcessRunLauncher`: Dagster's default launcher plus a health check of the run's process.
  The default launcher cannot tell that a run's process died (killed, out of memory): the run then
  stays STARTED and blocks the streaming queue. With this check, run monitoring fails such a run and
  run retries take over. The pid comes from the run's own "Started process for run" event.
- `WarmProcessRunLauncher` (what `infra/dagster/dagster.yaml` uses): the same check, but each run's
  process is forked from a server that has already imported Dagster, PySpark and the Kafka client,
  instead of a fresh interpreter importing them, and runs in a session of its own, so a daemon that
  dies does not take running runs with it.
"""

import functools
import multiprocessing
import os
import signal

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus


class LocalProcessRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = run_worker_pid(self._instance, run.run_id)
        if pid is None:
            # A STARTED run logs its pid first thing; anything else here is not a death we can see.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's process has not reported its pid yet")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process (pid {pid}) is gone")
        except PermissionError:
            pass  # alive, owned by another user
        return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))


def run_worker_pid(instance, run_id: str) -> int | None:
    """The pid the run's process logged when it started, if it did."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in reversed(records):
        event = record.event_log_entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        if "pid" in metadata and "process for run" in (event.message or "").lower():
            return int(metadata["pid"].value)
    return None


# Modules every run imports, loaded once by the fork server (importing the code location costs a
# fresh interpreter about 1.7 s here: `python -X importtime -c "import pinterest_dagster.definitions"`).
# The instance's storage (sqlite or postgres, alembic) and the run command come too: imported after the fork they
# cost each run another 0.55 s before its first event. The project's own code is not preloaded, so
# each run imports the code as it is now.
WARM_MODULES = [
    "dagster", "dagster_pyspark", "pyspark.sql", "pyspark.sql.connect.session", "kafka", "pandas", "pyarrow",
    "dagster._cli.api", "dagster._core.storage.sqlite_storage", "dagster_postgres", "alembic.runtime.environment",
]


@functools.cache
def _fork_context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WARM_MODULES)
    return context


def _execute_run(instance_ref, run_id: str) -> None:
    """The body of `dagster api execute_run`, in a process forked from the warm server."""
    os.setsid()  # the run outlives the daemon that launched it, as with a container per run
    from dagster import DagsterInstance
    from dagster._cli.api import _execute_run_command_body

    with DagsterInstance.from_ref(instance_ref) as instance:
        _execute_run_command_body(run_id, instance, lambda event: None, set_exit_code_on_failure=False)


class WarmProcessRunLauncher(LocalProcessRunLauncher):
    """`LocalProcessRunLauncher` whose run processes are forked from a server that has already imported
    Dagster, PySpark and the Kafka client: measured, a micro-batch reaches its first step 2.0-2.6 s after
    it is requested instead of 3.9-5.0 s (run records of `benchmarks.streaming latency`).

    Runs execute on this machine, in the daemon's environment, like the default launcher's. Used by
    `infra/dagster/dagster.yaml`; the health check and retries work as for the default launcher.
    """

    def launch_run(self, context: LaunchRunContext) -> None:
        multiprocessing.active_children()  # reap the processes of finished runs
        run = context.dagster_run
        process = _fork_context().Process(
            target=_execute_run, args=(self._instance.get_ref(), run.run_id), name=f"dagster-run-{run.run_id}"
        )
        process.start()

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        pid = run_worker_pid(self._instance, run_id)
        if pid is None:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGINT)  # the run process turns it into a clean cancellation
        except ProcessLookupError:
            return False
        return True
