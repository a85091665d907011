"""What failed in a run executed in this process, in a few lines a console or a CI log can show."""

import dagster as dg


def error_lines(error) -> list[str]:
    """An error and its causes, each with the last frames of its stack (none for Dagster's own errors)."""
    lines = []
    while error is not None:
        stack = "" if (error.cls_name or "").startswith("Dagster") else "".join(error.stack[-3:])
        message = error.message.strip()  # a Spark error's holds the JVM's stack: its start says what
        lines.append(f"  {message[:1500]}{' [...]' if len(message) > 1500 else ''}\n{stack}")
        error = error.cause
    return lines


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Each failed step's error and its causes; when no step failed, the resources that could not start (a
    run in this process starts them all before its first step: a Spark session refused fails no step), else
    the run's own error. Raised as is, the error shows Dagster's frames first, which hid the cause in a CI log."""
    parts = []
    for event in result.get_step_failure_events():
        parts += [f"step {event.step_key}:", *error_lines(event.step_failure_data.error)]
    if not parts:
        for event in result.all_events:
            if event.is_resource_init_failure:
                parts += ["resources:", *error_lines(event.event_specific_data.error)]
    if not parts:
        for event in result.all_events:
            if event.event_type == dg.DagsterEventType.RUN_FAILURE and event.job_failure_data.error:
                parts += ["run:", *error_lines(event.job_failure_data.error)]
    return "\n".join(parts) or "no step failed (the run itself did)"
