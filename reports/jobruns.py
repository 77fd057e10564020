"""Each scheduled job's last run, recorded for the operator's page (reports.operations): one JobRun item per job.

`recorded_run` wraps a job: one UpdateItem when it ends (its start, end, duration, outcome, a short summary,
when it last ended well and how many runs in a row failed). A run that Lambda kills (a timeout, a crash) writes
nothing: the page calls a job overdue when no run has ended within twice its interval. One small write a run
(the every-minute job: 1,440 a day, well under a cent). The write comes after the job's own calls, so the job's
first call of each kind is still its own (the short fault sweep, tests/faults.py, injects at those).

The record is bookkeeping: a failed write is logged and never fails, delays or repeats the job (short timeouts,
one retry: reports.models.JobRun.Meta). The summary holds the job's counts or the error's type, never an
error's message (it may quote input).
"""

import functools
import logging
import time
from datetime import UTC, datetime

from fxfer.aws import transient
from reports.models import JobRun

logger = logging.getLogger(__name__)

OK, FAILED = "ok", "failed"
SUMMARY_CHARS = 300


def recorded_run(function, *, name: str | None = None):
    """Wrap a Lambda entry point `function(event, context)` so each run is recorded under `name` (default: its
    dotted path). An answer with an "error" key (job_entry_point's answer to an error not worth retrying) is a
    failed run; a raised error is recorded and raised again unchanged."""
    job = name or f"{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def run(event=None, context=None):
        started = datetime.now(UTC)
        clock = time.monotonic()
        try:
            result = function(event, context)
        except Exception as exc:
            _finished(job, started, clock, outcome=FAILED, summary=_error_summary(exc))
            raise
        if isinstance(result, dict) and "error" in result:
            _finished(job, started, clock, outcome=FAILED, summary=f"{result['error']}; not retried")
        else:
            _finished(job, started, clock, outcome=OK, summary=_result_summary(result))
        return result

    return run


def _finished(job: str, started: datetime, clock: float, *, outcome: str, summary: str) -> None:
    actions = [
        JobRun.started_at.set(started),
        JobRun.finished_at.set(datetime.now(UTC)),
        JobRun.duration_ms.set(round((time.monotonic() - clock) * 1000)),
        JobRun.outcome.set(outcome),
        JobRun.summary.set(summary[:SUMMARY_CHARS] or "-"),
    ]
    if outcome == OK:
        actions += [JobRun.last_ok_at.set(datetime.now(UTC)), JobRun.failures_in_a_row.set(0)]
    else:
        actions.append(JobRun.failures_in_a_row.add(1))
    _write(job, actions)


def _write(job: str, actions: list) -> None:
    try:
        JobRun(job=job).update(actions=actions)
    except Exception:  # bookkeeping only: the job goes on (or its own outcome stands)
        logger.warning("job.record_failed", extra={"job": job}, exc_info=True)


def _error_summary(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    code = (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None
    code = code or getattr(exc, "cause_response_code", None)  # PynamoDB's errors wrap botocore's
    kind = type(exc).__name__ + (f" ({code})" if code else "")
    return f"{kind}; Lambda retries" if transient(exc) else f"{kind}; not retried"


def _result_summary(result) -> str:
    if not isinstance(result, dict):
        return ""
    return ", ".join(f"{key}={value}" for key, value in result.items() if isinstance(value, int | float | str | bool))
