"""The day's figures, counted from that day's audit events only (Query by day shard, fanned out over shards).

Which event counts for what (the actions and `details` the other apps write):

    transfer.created   ok        transfers sent; files sent (details.files); recipient domains (details.recipients);
                                 a large transfer when details.total_bytes reaches the threshold
    request.created    ok        upload requests (issue 5) an employee made; not the reply request that comes with
                                 every transfer sent with "allow replies" (details.reply_to): that one is part of
                                 the transfer, and counting it would count the transfer twice. Guests' domains
                                 (details.recipients) are external domains too: files come from them
    file.verified      ok        bytes uploaded (details.size), sent and received alike; and files received, when
                                 the file is a request's (a reply's too). Whose file it is cannot be read from the
                                 event (the actor is the guest, or the S3 event's job when that came first): one
                                 BatchGet of the verified files' transfers tells
    download.url_issued ok       downloads and bytes downloaded (details.size): outside people fetching files sent
    request.downloaded ok        received files downloaded: an employee fetching what guests sent. A figure of its
                                 own, not a "download": data coming in is not data going out, and the downloads
                                 figure (and the dashboard's chart of it) stays what left the company
    code.failed                  failed one-time codes
    signin.failed / signin.refused   failed sign-ins
    mail.bounced       ok        mails that bounced for good (a permanent bounce: the address is wrong or gone);
                                 a transient bounce (outcome "transient") is not one: the mail may still arrive.
                                 It shows in by_action as "mail.bounced.transient"
    mail.complained    ok        mails a recipient marked as spam
    Each is written once per mail, however often SES notifies (transfers/notifications.py). They are the
    department's of the transfer's or request's owner, like the rest of its system events.

A department's figures are those of its people: a person's own events, and the guest and system events of
the transfers and requests they made (guests have no department; what they download or upload is the
employee's).
"""

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from reports.models import AuditEvent, DailyRunning
from reports.services import UNCHAINED

TRANSFER_CREATED = "transfer.created"
REQUEST_CREATED = "request.created"
FILE_VERIFIED = "file.verified"
DOWNLOAD_ISSUED = "download.url_issued"
RECEIVED_DOWNLOADED = "request.downloaded"
CODE_FAILED = "code.failed"
SIGNIN_FAILURES = frozenset({"signin.failed", "signin.refused"})
MAIL_BOUNCED = "mail.bounced"
MAIL_COMPLAINED = "mail.complained"

# The figures every scope has, in the order pages and CSV files show them.
FIGURES = (
    "transfers_sent",
    "requests",
    "files",
    "files_received",
    "bytes_uploaded",
    "bytes_downloaded",
    "downloads",
    "received_downloads",
    "external_domains",
    "failed_codes",
    "failed_signins",
    "mails_bounced",
    "mails_complained",
)
NO_DEPARTMENT = "(none)"
RUNNING_SCOPE = "running"  # the DailyRunning item of a day (see today_figures)
# The running figures: every figure but external_domains, which is the size of the set of domains kept beside.
COUNTED = tuple(name for name in FIGURES if name != "external_domains")


@dataclass(frozen=True)
class DayEvent:
    """What aggregation keeps of one event (a busy day's events fit in memory this way)."""

    event_id: str
    action: str
    outcome: str
    actor: str
    subject: str
    details: dict
    of_request: bool = False  # the subject is an upload request (set for file.verified only; see day_events)
    # The subject transfer's owner when day_events already read the transfer (file.verified only): "" when it is
    # gone, None when not read. The departments reuse it instead of reading the same transfer a second time.
    owner_id: str | None = None
    count: int = 1  # hits an aggregated event stands for (anonymous traffic: reports.services.audit_count)


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    by_action: Counter = field(default_factory=Counter)
    domains: set = field(default_factory=set)
    large_transfers: list = field(default_factory=list)
    events: int = 0

    def add(self, event: DayEvent) -> None:
        hits = max(1, event.count)
        self.events += hits
        self.by_action[f"{event.action}.{event.outcome}"] += hits
        details = event.details or {}
        ok = event.outcome == "ok"
        if event.action == TRANSFER_CREATED and ok:
            self.counts["transfers_sent"] += 1
            self.counts["files"] += len(details.get("files") or ())
            self._domains(details)
            size = _int(details.get("total_bytes"))
            if size >= settings.FXFER_COMPLIANCE_LARGE_TRANSFER_BYTES:
                self.large_transfers.append({"transfer": event.subject, "actor": event.actor, "bytes": size})
        elif event.action == REQUEST_CREATED and ok:
            if not details.get("reply_to"):
                self.counts["requests"] += 1
            self._domains(details)
        elif event.action == FILE_VERIFIED and ok:
            self.counts["bytes_uploaded"] += _int(details.get("size"))
            if event.of_request:
                self.counts["files_received"] += 1
        elif event.action == DOWNLOAD_ISSUED and ok:
            self.counts["downloads"] += 1
            self.counts["bytes_downloaded"] += _int(details.get("size"))
        elif event.action == RECEIVED_DOWNLOADED and ok:
            self.counts["received_downloads"] += 1
        elif event.action == CODE_FAILED:
            self.counts["failed_codes"] += hits
        elif event.action in SIGNIN_FAILURES:
            self.counts["failed_signins"] += hits
        elif event.action == MAIL_BOUNCED and ok:
            self.counts["mails_bounced"] += 1
        elif event.action == MAIL_COMPLAINED and ok:
            self.counts["mails_complained"] += 1

    def _domains(self, details: dict) -> None:
        for address in details.get("recipients") or ():
            self.domains.add(str(address).rpartition("@")[2].casefold())

    def figures(self) -> dict:
        figures = {name: int(self.counts[name]) for name in FIGURES}
        figures["external_domains"] = len(self.domains)
        figures["events"] = self.events
        figures["by_action"] = dict(sorted(self.by_action.items()))
        figures["domains"] = sorted(self.domains)
        figures["large_transfers"] = sorted(self.large_transfers, key=lambda t: (-t["bytes"], t["transfer"]))
        return figures


def _int(value) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def day_events(day: date) -> list[DayEvent]:
    """Every event of one local day: one Query per shard, the shards read in parallel; then one BatchGet of
    the transfers whose files were verified that day, to tell the files received through requests (their
    owners are kept on the events, so the departments do not read those transfers again)."""
    shards = [f"{day.isoformat()}#{shard}" for shard in range(settings.FXFER_AUDIT_DAY_SHARDS)]
    with ThreadPoolExecutor(max_workers=len(shards)) as pool:
        parts = list(pool.map(_shard_events, shards))
    return with_kinds([event for part in parts for event in part])


def with_kinds(events: list[DayEvent]) -> list[DayEvent]:
    """The events, each verified file's marked with whether its transfer is a request and who owns it (one
    BatchGet of those transfers; none when no file was verified)."""
    events = list(events)
    verified = {_subject_id(e) for e in events if e.action == FILE_VERIFIED and e.outcome == "ok"} - {""}
    found = _kinds_and_owners(verified)
    for number, event in enumerate(events):
        if event.action == FILE_VERIFIED and _subject_id(event) in verified:
            kind, owner_id = found.get(_subject_id(event), ("", ""))
            events[number] = replace(event, of_request=kind == "request", owner_id=owner_id)
    return events


def _subject_id(event: DayEvent) -> str:
    return event.subject.partition(":")[2] if event.subject.startswith("transfer:") else ""


def _kinds_and_owners(transfer_ids: set[str]) -> dict[str, tuple[str, str]]:
    """transfer id → ("request" or "", owner id) for these transfers (one BatchGet); gone ones are left out."""
    from transfers.models import KIND_REQUEST, Transfer

    if not transfer_ids:
        return {}
    found = Transfer.batch_get(sorted(transfer_ids), attributes_to_get=["transfer_id", "kind", "owner_id"])
    return {t.transfer_id: ("request" if t.kind == KIND_REQUEST else "", t.owner_id or "") for t in found}


def _shard_events(day_shard: str) -> list[DayEvent]:
    return [day_event(e) for e in AuditEvent.by_day.query(day_shard)]


def day_event(event: AuditEvent) -> DayEvent:
    """What aggregation keeps of a stored event (before with_kinds)."""
    return DayEvent(
        event_id=event.event_id,
        action=event.action,
        outcome=event.outcome,
        actor=event.actor,
        subject=event.subject,
        details=event.details or {},
        count=int(event.count) if event.count is not None else 1,
    )


def tally(events: Iterable[DayEvent]) -> Tally:
    result = Tally()
    for event in events:
        result.add(event)
    return result


def tally_by_department(events: list[DayEvent]) -> dict[str, Tally]:
    """The events split by the department they belong to (see the module's docstring)."""
    departments = _departments(events)
    tallies: dict[str, Tally] = {}
    for event in events:
        tallies.setdefault(departments(event), Tally()).add(event)
    return tallies


def _departments(events: list[DayEvent]):
    """A function event → department, built from one BatchGet of the day's transfers and one of its people."""
    from accounts.tables import UserRecord
    from transfers.models import Transfer

    transfer_ids = {e.subject.partition(":")[2] for e in events if e.subject.startswith("transfer:")}
    # Transfers day_events already read (those with a verified file) are not read again: each is read once.
    owner_of = {_subject_id(e): e.owner_id for e in events if e.owner_id is not None}
    unread = sorted(i for i in transfer_ids - owner_of.keys() if i)
    owner_of |= {
        t.transfer_id: t.owner_id for t in Transfer.batch_get(unread, attributes_to_get=["transfer_id", "owner_id"])
    }
    user_ids = {e.actor.partition(":")[2] for e in events if e.actor.startswith("user:")} | set(owner_of.values())
    department_of = {u.user_id: u.department for u in UserRecord.batch_get(sorted(i for i in user_ids if i))}

    def department(event: DayEvent) -> str:
        if event.actor.startswith("user:"):
            user_id = event.actor.partition(":")[2]
        else:
            user_id = owner_of.get(event.subject.partition(":")[2], "") if event.subject.startswith("transfer:") else ""
        return department_of.get(user_id) or NO_DEPARTMENT

    return department


def today_figures(now: datetime | None = None) -> dict:
    """The figures of today (local day) so far, as tally(day_events(today)) gives them, in a few reads however
    busy the day: the day's running totals (reports.models.DailyRunning, which the chainer adds each event to as
    it links it) and the events not linked yet (at most the chainer's merge delay of them).

    The reads go in this order so that no event is counted twice or left out: the events the by-unchained index
    still lists for today, then the totals (consistent). A listed event counts unless a transaction the totals
    already hold linked it (its seq is at most the totals' last_seq): one linked since the index was read is in
    one place only, and one the index still lists after its linking (index lag) is not counted twice. Only the
    listed events older than the totals' linked_before can be such (every event the totals hold sorts before
    it), so only those are read again (consistent) to see their seq: none, most of the time. Until the day has
    totals (nothing linked yet today) or when they began mid-day (the first day of the chainer keeping them) the
    day's events are counted instead."""
    day = (now or datetime.now(UTC)).astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    start, end = (datetime.combine(d, time(), tzinfo=ZoneInfo(settings.TIME_ZONE)) for d in (day, day + timedelta(1)))
    listed = list(
        AuditEvent.by_unchained.query(
            UNCHAINED, AuditEvent.sort_key.between(start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat())
        )
    )
    running = next(iter(DailyRunning.batch_get([(day.isoformat(), RUNNING_SCOPE)], consistent_read=True)), None)
    if running is None or not running.complete:
        return _shown(tally(day_events(day)))
    last_seq, linked_before = int(running.last_seq or 0), running.linked_before or ""
    prefix = f"{day.isoformat()}#"
    older = [e.event_id for e in listed if e.sort_key < linked_before]
    pending = [e for e in listed if e.sort_key >= linked_before and e.day_shard.startswith(prefix)]
    pending += [
        e
        for e in (AuditEvent.batch_get(older, consistent_read=True) if older else ())
        if e.day_shard.startswith(prefix) and (e.seq is None or int(e.seq) > last_seq)
    ]
    result = running_tally(running)
    for event in with_kinds([day_event(e) for e in pending]):
        result.add(event)
    return _shown(result)


def running_tally(item: DailyRunning) -> Tally:
    """A Tally holding a day's running totals (only the figures: no events, actions or large transfers)."""
    counts = Counter({name: int(getattr(item, name) or 0) for name in COUNTED})
    return Tally(counts=counts, domains=set(item.domains or ()), events=int(item.events or 0))


def _shown(result: Tally) -> dict:
    """The figures the dashboard shows, and the number of events (hits) they come from."""
    figures = result.figures()
    return {name: figures[name] for name in (*FIGURES, "events")}
