"""Observability with Powertools for AWS Lambda: structured logs, CloudWatch metrics (embedded metric format)
and X-Ray traces.

- Logs: `JsonFormatter` is Powertools' JSON formatter, installed on the console handler by LOGGING
  (fxfer/settings/base.py) so every stdlib logger (ours, Django's, Zappa's) writes one JSON object per line.
  fxfer.logs.RedactSecrets rewrites each record before it; the formatter redacts again what it writes and drops
  extra values that are not plain data (Django passes the request object, whose repr holds the path).
- `RequestLogMiddleware` writes one line per request ("request"): request id, route (the URL pattern, never the
  path: a guest link's path is its token), method, status, latency, the employee's user key or a hashed guest
  id, cold start. `observed_job` writes one line per job run ("job") with its outcome, duration and counts.
- Metrics: one count per audit event kind (`count_audit_event`, called where events are committed), job
  outcomes and counts, chainer lag; buffered in Powertools Metrics and printed as one EMF line per request or
  job (`flush_metrics`). Only on Lambda (CloudWatch reads EMF from the function's log); elsewhere they are
  dropped, so `make run` and tests print none unless a test asks.
- Traces: on Lambda with active tracing (zappa_settings "xray_tracing": Lambda sets AWS_XRAY_DAEMON_ADDRESS),
  Powertools Tracer patches botocore (each AWS call a subsegment) and the middleware opens a subsegment per
  request named by its route. Off Lambda nothing imports the X-Ray SDK. A daemon that is not there costs
  nothing: the SDK sends UDP and swallows send errors.

Cold start: Powertools' logging formatter and metrics import in ~5 ms beside boto3; the tracer (which imports
the X-Ray SDK) only when tracing is on.
"""

import contextlib
import functools
import json
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from fxfer.logs import _PLAIN, _redacted, redact

logger = logging.getLogger(__name__)

NAMESPACE = "fxfer"
SERVICE = "fxfer"

# Metric names: alarms (fxfer/provisioning.py) refer to these.
TRANSFERS_SENT = "TransfersSent"
TRANSFERS_REQUESTED = "TransfersRequested"
BYTES_UPLOADED = "BytesUploaded"
BYTES_DOWNLOADED = "BytesDownloaded"
DOWNLOADS = "Downloads"
RECEIVED_DOWNLOADS = "ReceivedDownloads"
FAILED_CODES = "FailedCodes"
FAILED_SIGNINS = "FailedSignIns"
MAILS_FAILED = "MailsFailed"
MAILS_BOUNCED = "MailsBounced"
MAILS_COMPLAINED = "MailsComplained"
SWEEP_DELETIONS = "SweepDeletions"
JOB_SUCCEEDED = "JobSucceeded"
JOB_FAILED = "JobFailed"
CHAIN_LAG = "ChainLagSeconds"

COUNT, BYTES, SECONDS = "Count", "Bytes", "Seconds"


def dimensions(stage: str | None = None) -> dict[str, str]:
    """The dimensions every fxfer metric carries; an alarm must name exactly these (plus `job` for job metrics)."""
    if stage is None:
        from django.conf import settings

        stage = settings.FXFER_STAGE
    return {"service": SERVICE, "stage": stage}


def on_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


_cold = True
_cold_lock = threading.Lock()


def cold_start() -> bool:
    """True for the first request or job of this process, False after."""
    global _cold
    with _cold_lock:
        cold, _cold = _cold, False
    return cold


# --- logs ------------------------------------------------------------------------------------------------------


class JsonFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON log line (level, location, message, timestamp in UTC, service, X-Ray trace id, extra
    fields as top-level keys) with the logger's name, and every secret redacted."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("service", SERVICE)
        super().__init__(
            json_serializer=functools.partial(json.dumps, default=str, ensure_ascii=False),
            utc=True,
            use_rfc3339=True,
            # Its frames and exception value are objects the redaction cannot see; "exception" has the traceback.
            serialize_stacktrace=False,
            **kwargs,
        )

    def format(self, record: logging.LogRecord) -> str:
        record.logger = record.name
        return super().format(record)

    def _extract_log_message(self, log_record: logging.LogRecord) -> str:
        # Always the text, redacted as text (Powertools would parse a JSON-looking message into an object, whose
        # values the redaction then sees without their names).
        return redact(log_record.getMessage())

    def serialize(self, log: dict) -> str:
        plain = {key: value for key, value in log.items() if isinstance(value, _PLAIN)}
        return super().serialize(_redacted(plain))


# --- metrics ---------------------------------------------------------------------------------------------------

_metrics = None
_metrics_lock = threading.Lock()


def _buffer():
    global _metrics
    if _metrics is None:
        from aws_lambda_powertools.metrics import Metrics

        _metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
        _metrics.set_default_dimensions(**dimensions())
    return _metrics


def add_metric(name: str, value: float, unit: str = COUNT) -> None:
    """Buffer one metric value; `flush_metrics` prints the buffer as one EMF line. Never raises. Off Lambda
    nothing is buffered (Powertools prints a buffer on its own once a metric has 100 values)."""
    if not emf_enabled():
        return
    try:
        with _metrics_lock:
            _buffer().add_metric(name=name, unit=unit, value=value)
    except Exception:
        logger.exception("metrics.add_failed", extra={"metric": name})


def flush_metrics() -> None:
    """Print what was buffered as EMF (on Lambda), or drop it (elsewhere). Never raises."""
    try:
        with _metrics_lock:
            if _metrics is None or not _metrics.metric_set:
                return
            if emf_enabled():
                _metrics.flush_metrics()
            else:
                _metrics.clear_metrics()
    except Exception:
        logger.exception("metrics.flush_failed")


def emf_enabled() -> bool:
    """EMF lines are written on Lambda only: CloudWatch turns them into metrics there; locally they are noise."""
    return on_lambda()


def _single(name: str, value: float, unit: str, **extra_dimensions: str) -> None:
    """One metric with dimensions of its own (a job's name), printed at once."""
    if not emf_enabled():
        return
    try:
        from aws_lambda_powertools.metrics import single_metric

        with single_metric(
            name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions=dimensions()
        ) as metric:
            for key, dimension in extra_dimensions.items():
                metric.add_dimension(name=key, value=dimension)
    except Exception:
        logger.exception("metrics.add_failed", extra={"metric": name})


def _int(value) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def audit_metrics(action: str, outcome: str, details: dict | None, hits: int = 1) -> list[tuple[str, float, str]]:
    """The metrics one audit event stands for, as (name, value, unit): the same reading of the events as the
    daily figures (reports/aggregation.py), so a dashboard's metrics and the compliance reports agree."""
    details = details or {}
    ok = outcome == "ok"
    if action == "transfer.created" and ok:
        return [(TRANSFERS_SENT, 1, COUNT)]
    if action == "request.created" and ok and not details.get("reply_to"):
        return [(TRANSFERS_REQUESTED, 1, COUNT)]
    if action == "file.verified" and ok:
        return [(BYTES_UPLOADED, _int(details.get("size")), BYTES)]
    if action == "download.url_issued" and ok:
        return [(DOWNLOADS, 1, COUNT), (BYTES_DOWNLOADED, _int(details.get("size")), BYTES)]
    if action == "request.downloaded" and ok:
        return [(RECEIVED_DOWNLOADS, 1, COUNT)]
    if action == "code.failed":
        return [(FAILED_CODES, hits, COUNT)]
    if action in ("signin.failed", "signin.refused"):
        return [(FAILED_SIGNINS, hits, COUNT)]
    if action == "mail.sent" and outcome == "failed":
        return [(MAILS_FAILED, 1, COUNT)]
    if action == "mail.bounced" and ok:  # a permanent bounce; "transient" may still arrive
        return [(MAILS_BOUNCED, 1, COUNT)]
    if action == "mail.complained" and ok:
        return [(MAILS_COMPLAINED, 1, COUNT)]
    return []


def count_audit_event(action: str, outcome: str, details: dict | None = None, hits: int = 1) -> None:
    """Count a committed audit event (once: callers skip a retry that found its own earlier event)."""
    for name, value, unit in audit_metrics(action, outcome, details, hits):
        add_metric(name, value, unit)


# --- traces ----------------------------------------------------------------------------------------------------

_tracer = None


def tracing_on() -> bool:
    """On Lambda with active tracing: Lambda sets the daemon's address only then."""
    return on_lambda() and bool(os.environ.get("AWS_XRAY_DAEMON_ADDRESS"))


def setup_tracing() -> None:
    """Patch botocore so every AWS call is an X-Ray subsegment (Powertools Tracer); nothing off Lambda."""
    global _tracer
    if _tracer is not None or not tracing_on():
        return
    try:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
    except Exception:  # tracing must never stop the function from starting
        logger.exception("tracing.setup_failed")


@contextlib.contextmanager
def _subsegment(name: str):
    """A subsegment of Lambda's own segment, or nothing when tracing is off or the SDK fails."""
    if _tracer is None or _tracer.disabled:
        yield None
        return
    try:
        context = _tracer.provider.in_subsegment(name)
        subsegment = context.__enter__()
    except Exception:
        logger.warning("tracing.subsegment_failed", exc_info=True)
        yield None
        return
    try:
        yield subsegment
    except BaseException as exc:
        _safe(context.__exit__, type(exc), exc, exc.__traceback__)
        raise
    else:
        _safe(context.__exit__, None, None, None)


def _safe(call, *args) -> None:
    try:
        call(*args)
    except Exception:
        logger.warning("tracing.subsegment_failed", exc_info=True)


# --- requests --------------------------------------------------------------------------------------------------

UNRESOLVED = "(unresolved)"


def guest_key(recipient_id: str) -> str:
    """A guest's id in logs: an HMAC of the recipient id with the secret key (never the address), stable so one
    guest's requests can be followed, useless to anyone without the key."""
    from django.utils.crypto import salted_hmac

    return salted_hmac("fxfer.observability.guest", recipient_id).hexdigest()[:16]


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        from django.conf import settings

        # WhiteNoise answers static files before URL resolution.
        static = settings.STATIC_URL or ""
        return static if static and request.path.startswith(static) else UNRESOLVED
    # The pattern ("t/<str:token>"), never the path: a guest link's path holds its token.
    return "/" + match.route if match.route else (match.view_name or UNRESOLVED)


def _who(request) -> dict:
    """The employee's user key, or a hashed guest id, from what the request already loaded (never a session
    read of its own: a page that needed no session must not pay a DynamoDB read for a log line)."""
    from django.utils.functional import LazyObject, empty

    user = getattr(request, "user", None)
    if isinstance(user, LazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is not None and getattr(user, "is_authenticated", False):
        return {"user": str(user.pk)}
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "_session_cache", None) is not None:
        from transfers.views.common import GUEST_DOWNLOAD_SESSION, GUEST_UPLOAD_SESSION

        for key in (GUEST_DOWNLOAD_SESSION, GUEST_UPLOAD_SESSION):
            held = session._session_cache.get(key)
            if isinstance(held, dict) and held.get("recipient_id"):
                return {"guest": guest_key(str(held["recipient_id"]))}
    return {}


def _request_id(request) -> str:
    context = request.META.get("lambda.context")
    return getattr(context, "aws_request_id", None) or uuid.uuid4().hex


def request_line(request, *, status: int, started: float, cold: bool) -> None:
    """Log the request's line and flush its metrics (RequestLogMiddleware, fxfer/middleware.py)."""
    entry = {
        "request_id": _request_id(request),
        "route": _route(request),
        "method": request.method,
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "cold_start": cold,
    }
    try:
        entry.update(_who(request))
    except Exception:
        logger.warning("request.who_failed", exc_info=True)
    logger.info("request", extra=entry)
    flush_metrics()


def request_subsegment(request):
    """A context manager: the request's X-Ray subsegment (None when tracing is off)."""
    return _subsegment(f"## {request.method}")


def annotate(subsegment, request, status: int) -> None:
    """Name the request's subsegment by its route and add its method and status; never raises."""
    if subsegment is not None:
        _safe(_annotate, subsegment, request, status)


def _annotate(subsegment, request, status: int) -> None:
    route = _route(request)
    subsegment.name = f"## {request.method} {route}"
    subsegment.put_annotation("route", route)
    subsegment.put_http_meta("method", request.method)
    subsegment.put_http_meta("status", status)


# --- jobs ------------------------------------------------------------------------------------------------------

# Result keys that are counts a job reports (the rest: times, flags, days).
_NOT_COUNTS = frozenset({"seconds", "chain_head"})


def _counts(result) -> dict:
    if not isinstance(result, dict):
        return {}
    return {
        key: value
        for key, value in result.items()
        if isinstance(value, int) and not isinstance(value, bool) and key not in _NOT_COUNTS
    }


def observed_job(name: str):
    """Wrap a job entry point `f(event, context)`: one "job" log line (job, outcome, duration, counts, cold
    start), a JobSucceeded or JobFailed metric with the job's name as a dimension, each count of its result as
    a metric, and the buffered metrics flushed. An answered error ({"error": ...}) counts as failed."""

    def decorate(function):
        @functools.wraps(function)
        def entry(event=None, context=None):
            started = time.perf_counter()
            cold = cold_start()
            outcome, result = "failed", None
            try:
                result = function(event, context)
                outcome = "failed" if isinstance(result, dict) and result.get("error") else "ok"
                return result
            finally:
                counts = _counts(result)
                seconds = round(time.perf_counter() - started, 3)
                logger.info(
                    "job",
                    extra={
                        "job": name,
                        "outcome": outcome,
                        "duration_ms": round(seconds * 1000, 1),
                        "counts": counts,
                        "cold_start": cold,
                        "request_id": getattr(context, "aws_request_id", None) or uuid.uuid4().hex,
                    },
                )
                _single(JOB_SUCCEEDED if outcome == "ok" else JOB_FAILED, 1, COUNT, job=name)
                flush_metrics()

        return entry

    return decorate


def chain_lag_seconds(now: datetime | None = None) -> float:
    """How long the oldest event still waiting for the chainer has waited (0 when none waits): the chain's
    merge delay as it is, measured after the chainer ran."""
    from reports.operations import chain_lag  # the operator's page shows the same measure

    return chain_lag(now=(now or datetime.now(UTC)).astimezone(UTC)).lag.total_seconds()


def record_chain_lag(now: datetime | None = None) -> float | None:
    """Measure the chainer lag and buffer it as a metric; None (logged) when it cannot be read."""
    try:
        lag = chain_lag_seconds(now)
    except Exception:
        logger.warning("metrics.chain_lag_failed", exc_info=True)
        return None
    add_metric(CHAIN_LAG, lag, SECONDS)
    return lag
