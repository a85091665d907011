"""`LocalProcessRunLauncher`: Dagster's default launcher, plus a health check of the run's process.

The default launcher cannot tell that a run's process died (killed, out of memory): the run then
stays STARTED and blocks the streaming queue. With this check, run monitoring fails such a run and
run retries take over. The pid comes from the run's own "Started process for run" event, so this
works for runs on this machine, which is what the default launcher starts.
"""

import os

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


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
