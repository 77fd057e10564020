"""Fault injection below botocore's retry layer, for the fast tier (in-process moto).

moto answers every AWS call from botocore's "before-send" hook (BotocoreStubber), which stands exactly where the
HTTP request would leave the machine: below botocore's retry handler. Wrapping it injects the three ways AWS fails:

- ERROR: an error answer (DynamoDB ThrottlingException / ProvisionedThroughputExceeded, S3 SlowDown, SES
  Throttling, KMS KMSInternalException); nothing happened; botocore retries it.
- TIMEOUT: the connection times out before the request is sent; nothing happened; botocore retries it.
- LOST: the request reaches moto and takes effect, then the answer is lost (read timeout); botocore retries, and
  the retry meets its own effect.
- KILLED: the request takes effect, then the process dies (a Lambda timeout or crash): nothing after that line
  runs. `Killed` is a BaseException, so no `except Exception` in the code under test can swallow it.

A fault fires `times` times in a row at the `nth` matching call (1-based). `times=1` is what botocore's retry
absorbs; `times=10` outlasts every retry, so the caller sees the failure.

    with inject(LOST, service="dynamodb", operation="TransactWriteItems", nth=1) as fault:
        transfer_release(...)
    assert fault.fired
"""

import contextlib
import itertools
import os
from dataclasses import dataclass, field

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

ERROR, TIMEOUT, LOST, KILLED = "error", "timeout", "lost", "killed"
KINDS = (ERROR, TIMEOUT, LOST, KILLED)


class Killed(BaseException):
    """The process died right after this AWS call took effect."""


_THROTTLE = {
    "dynamodb": (
        400,
        "application/x-amz-json-1.0",
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}',
    ),
    "s3": (
        503,
        "application/xml",
        b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    ),
    "kms": (500, "application/x-amz-json-1.1", b'{"__type":"KMSInternalException","message":"internal error"}'),
    "ses": (
        400,
        "text/xml",
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        b"<Message>Maximum sending rate exceeded.</Message></Error></ErrorResponse>",
    ),
    "sqs": (
        400,
        "application/x-amz-json-1.0",
        b'{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}',
    ),
}


@dataclass
class Fault:
    kind: str
    service: str | None = None  # "dynamodb", "s3", "ses", "kms"; None: any
    operation: str | None = None  # "TransactWriteItems", "PutObject", ...; None: any
    nth: int = 1
    times: int = 1
    seen: int = 0
    fired: int = 0
    calls: list = field(default_factory=list)  # (service, operation) of every call, for the matrix

    def matches(self, service: str, operation: str) -> bool:
        return (self.service in (None, service)) and (self.operation in (None, operation))

    def take(self, service: str, operation: str) -> bool:
        self.calls.append((service, operation))
        if not self.matches(service, operation):
            return False
        self.seen += 1
        if self.nth <= self.seen < self.nth + self.times:
            self.fired += 1
            return True
        return False


def _service_operation(event_name: str) -> tuple[str, str]:
    # "before-send.dynamodb.TransactWriteItems"
    _before, service, operation = [*event_name.split(".", 2), "", ""][:3]
    return service, operation


@contextlib.contextmanager
def inject(kind: str, *, service: str | None = None, operation: str | None = None, nth: int = 1, times: int = 1):
    """Inject `kind` at the nth matching AWS call, `times` times in a row (see the module docstring)."""
    from moto.core.botocore_stubber import BotocoreStubber

    fault = Fault(kind=kind, service=service, operation=operation, nth=nth, times=times)
    original = BotocoreStubber.__call__

    def faulty(self, event_name, request, **kwargs):
        service_name, operation_name = _service_operation(event_name)
        if not fault.take(service_name, operation_name):
            return original(self, event_name, request, **kwargs)
        if kind == ERROR:
            status, content_type, body = _THROTTLE.get(service_name, _THROTTLE["dynamodb"])
            return _response(request, status, content_type, body)
        if kind == TIMEOUT:
            raise ConnectTimeoutError(endpoint_url=request.url)
        answer = original(self, event_name, request, **kwargs)  # it happened; the answer never arrives
        del answer
        if kind == KILLED:
            raise Killed(f"{service_name}.{operation_name}")
        raise ReadTimeoutError(endpoint_url=request.url)

    from botocore.retries.quota import RetryQuota
    from botocore.retries.standard import ExponentialBackoff

    # Retries without their back-off sleeps, and without the per-client retry quota that hundreds of injected
    # faults in one process would drain (AWS refills it with every success; a test process makes too few).
    saved = (ExponentialBackoff.delay_amount, RetryQuota.acquire)
    ExponentialBackoff.delay_amount = lambda self, context: 0
    RetryQuota.acquire = lambda self, capacity_amount: True
    BotocoreStubber.__call__ = faulty
    try:
        yield fault
    finally:
        BotocoreStubber.__call__ = original
        ExponentialBackoff.delay_amount, RetryQuota.acquire = saved


@contextlib.contextmanager
def recording():
    """Record every AWS call (service, operation) made inside, without injecting anything."""
    with inject(ERROR, service="-none-") as fault:
        yield fault


def _response(request, status: int, content_type: str, body: bytes) -> AWSResponse:
    class _Raw:
        def __init__(self, data: bytes) -> None:
            self._chunks = iter([data])

        def stream(self, **_kwargs):
            yield from self._chunks

    return AWSResponse(request.url, status, {"Content-Type": content_type, "x-amzn-RequestId": "fault"}, _Raw(body))


def distinct_calls(fault: Fault) -> list[tuple[str, str, int]]:
    """Each (service, operation, nth) a recorded run made, to inject a fault at every one of them."""
    out = []
    for (service, operation), group in itertools.groupby(sorted(fault.calls)):
        out += [(service, operation, n) for n in range(1, len(list(group)) + 1)]
    return out


# --- The matrix: every AWS call of a flow x every fault kind → did the invariants hold? ----------------------


@dataclass(frozen=True)
class Row:
    flow: str
    service: str
    operation: str
    nth: int
    kind: str
    times: int
    outcome: str  # "ok" (the flow returned) or the exception it raised
    held: bool
    problem: str = ""


MATRIX: list[Row] = []
PERSISTENT = 10  # more than any client's retries: the caller sees the failure


def full_sweep() -> bool:
    """`make fault-matrix` (FXFER_FAULT_MATRIX or FXFER_FAULT_FULL set) runs every case; `make test` a short
    sweep: every distinct call once (every commit each time), with the three cases that tell most: an answer
    lost once (the retry meets its own effect), an error that outlasts the retries (the caller must tell the
    truth and a later run heal it), and a kill right after the call took effect."""
    return bool(os.environ.get("FXFER_FAULT_MATRIX") or os.environ.get("FXFER_FAULT_FULL"))


SHORT_CASES = ((LOST, 1), (ERROR, PERSISTENT), (KILLED, 1))


def sweep_faults(flow, *, setup, act, check, heal=None, kinds=KINDS, times=(1, PERSISTENT), only=None):
    """For each AWS call `act(state)` makes on a clean run (recorded first), inject each fault kind once (what
    botocore's retry absorbs) and persistently (the caller sees it); a kill happens once. After each,
    `heal(state)` runs what would run next in production (the S3 event again, the jobs), then
    `check(state, result, error)` asserts the invariants (`error` is the exception the flow raised, a Killed
    for a kill). `only(service, operation)` narrows the calls. Every case is a row of MATRIX. Outside
    `make fault-matrix` the sweep is short (see full_sweep)."""
    state = setup()
    with recording() as rec:
        act(state)
    calls = [c for c in distinct_calls(rec) if only is None or only(c[0], c[1])]
    assert calls, f"{flow}: the flow made no AWS call"
    if full_sweep():
        cases = [(kind, count) for kind in kinds for count in (times if kind != KILLED else (1,))]
    else:
        calls = [c for c in calls if c[2] == 1 or c[1] == "TransactWriteItems"]
        cases = [case for case in SHORT_CASES if case[0] in kinds]
    problems = []
    for service, operation, nth in calls:
        for kind, count in cases:
            state = setup()
            result, error = None, None
            with inject(kind, service=service, operation=operation, nth=nth, times=count):
                try:
                    result = act(state)
                except (Exception, Killed) as exc:  # the flow may fail; what it told and left is checked below
                    error = exc
            problem = ""
            try:
                if heal is not None:
                    heal(state)
                check(state, result, error)
            except AssertionError as exc:
                problem = str(exc).splitlines()[0][:300] if str(exc) else "assertion failed"
            outcome = "ok" if error is None else type(error).__name__
            MATRIX.append(Row(flow, service, operation, nth, kind, count, outcome, not problem, problem))
            if problem:
                problems.append(f"{service}.{operation}#{nth} {kind}x{count}: {problem}")
    assert not problems, f"{flow}: {len(problems)} cases broke an invariant:\n" + "\n".join(problems[:30])
    return calls


def matrix_text(rows: list[Row]) -> str:
    """The matrix as a Markdown table: flow, call, and for each fault kind (once / persistent) whether the
    invariants held, with what the flow answered."""
    lines = [
        "| flow | AWS call | error x1 | error x10 | timeout x1 | timeout x10 | lost x1 | lost x10 | killed after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cases = {}
    for row in rows:
        cases.setdefault((row.flow, row.service, row.operation, row.nth), {})[(row.kind, row.times)] = row
    for (flow, service, operation, nth), by_kind in cases.items():
        cells = []
        for kind in KINDS:
            for count in (1, PERSISTENT) if kind != KILLED else (1,):
                row = by_kind.get((kind, count))
                if row is None:
                    cells.append("-")
                else:
                    mark = "held" if row.held else "**BROKEN**"
                    cells.append(mark if row.outcome == "ok" else f"{mark} ({row.outcome})")
        lines.append(f"| {flow} | {service}.{operation} #{nth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
