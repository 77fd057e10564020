"""Reads for the compliance admin. Every list is a Query on a key or an index, a page at a time (cursors);
nothing here Scans.

    audit log        by actor: GSI by-actor (date range on its sort key); otherwise GSI by-day, each day's
                     shards merged newest first; an action filter rides on the same Query
    transfer search  by sender, recipient, recipient domain or file name: the `transfer-search` table (a term
                     per item, date range on its sort key); no term: GSI by-day of the transfers. Upload
                     requests are items of the same table with their own terms, so both kinds come back; the
                     status and kind filters are applied to the rows each Query page returns
    transfer detail  GetItem of the transfer, Query of its files and recipients, GSI by-subject of its events;
                     for a transfer that allows replies, the same three reads of its reply request
    reports          GetItem / BatchGet / Query of DailyStats by day
"""

import base64
import binascii
import calendar
import heapq
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from pynamodb.exceptions import PynamoDBException

from reports.errors import AuditError
from reports.models import AuditEvent, DailyStats
from reports.services import DEPARTMENT_SCOPE, SCOPE_ALL, local_day

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SORT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T[0-9:.+]+#\d{20}#[0-9a-f]{32}$")
MAX_RANGE_DAYS = 366


# --- Cursors: opaque to the browser, checked on the way back ------------------------------------------------


def _encode(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> dict:
    if not cursor:
        return {}
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AuditError("cursor_invalid", "The page link is not valid; start the search again.") from None
    if not isinstance(position, dict):
        raise AuditError("cursor_invalid", "The page link is not valid; start the search again.")
    return position


def day_bounds(first_day: date, last_day: date) -> tuple[str, str]:
    """UTC ISO bounds [start of first_day, start of the day after last_day) in local time, as sort-key prefixes."""
    zone = ZoneInfo(settings.TIME_ZONE)
    start = datetime.combine(first_day, time.min, zone).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start.isoformat(), end.isoformat()


def checked_range(first_day: date, last_day: date) -> tuple[date, date]:
    if last_day < first_day:
        raise AuditError("range_invalid", "The end of the date range is before its start.")
    if (last_day - first_day).days >= MAX_RANGE_DAYS:
        raise AuditError("range_invalid", f"Choose at most {MAX_RANGE_DAYS} days.")
    return first_day, last_day


# --- Audit log ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    seq: int | None  # its place in the hash chain; None until the chainer links it (within minutes)
    event_id: str
    at: datetime
    action: str
    outcome: str
    actor: str
    actor_label: str  # the person's address (user) or the recipient's (guest); else the actor itself
    subject: str
    transfer_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict
    sort_key: str
    count: int | None  # an aggregated event (anonymous traffic, access.denied): how many times in its minute
    from_reply: bool = False  # on a transfer's page: an event of its reply request, merged into its timeline


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    next_cursor: str | None


def audit_log_page(
    *,
    first_day: date,
    last_day: date,
    actor: str = "",
    action: str = "",
    cursor: str | None = None,
    limit: int | None = None,
) -> AuditPage:
    """One page of the audit log, newest first, filtered by actor, action and local date range."""
    limit = max(1, min(int(limit or settings.FXFER_ADMIN_PAGE_SIZE), 500))
    found = _events_newest_first(first_day, last_day, actor=actor, action=action, cursor=cursor, page=limit)
    events = list(islice(found, limit + 1))
    more = len(events) > limit
    events = events[:limit]
    rows = tuple(_rows(events))
    next_cursor = _encode({"k": events[-1].sort_key, "d": _event_day(events[-1])}) if more and events else None
    return AuditPage(rows=rows, next_cursor=next_cursor)


def audit_log_rows(*, first_day: date, last_day: date, actor: str = "", action: str = "") -> Iterator[AuditRow]:
    """Every matching event, newest first, for a streaming export (read a page at a time as it is written)."""
    events = _events_newest_first(first_day, last_day, actor=actor, action=action, cursor=None, page=500)
    while batch := list(islice(events, 100)):
        yield from _rows(batch)


def _event_day(event: AuditEvent) -> str:
    return event.day_shard.partition("#")[0]


def _events_newest_first(
    first_day: date, last_day: date, *, actor: str, action: str, cursor: str | None, page: int
) -> Iterator[AuditEvent]:
    first_day, last_day = checked_range(first_day, last_day)
    position = _decode(cursor)
    after = position.get("k")
    if after is not None and not (isinstance(after, str) and _SORT_KEY.match(after)):
        raise AuditError("cursor_invalid", "The page link is not valid; start the search again.")
    action_filter = (AuditEvent.action == action) if action else None
    low, high = day_bounds(first_day, last_day)
    if actor:
        # One partition of the by-actor index; the date range is a range on its sort key.
        yield from _skip_cursor(
            AuditEvent.by_actor.query(
                actor,
                AuditEvent.sort_key.between(low, after or high),
                filter_condition=action_filter,
                scan_index_forward=False,
                page_size=page,
            ),
            after,
        )
        return
    day = last_day
    if position.get("d"):
        if not (isinstance(position["d"], str) and _DAY.match(position["d"])):
            raise AuditError("cursor_invalid", "The page link is not valid; start the search again.")
        day = min(day, date.fromisoformat(position["d"]))
    while day >= first_day:
        yield from _day_newest_first(day, action_filter=action_filter, before=after, page=page)
        after = None
        day -= timedelta(days=1)


def _day_newest_first(day: date, *, action_filter, before: str | None, page: int) -> Iterator[AuditEvent]:
    """One local day's events from all its shards, merged newest first (sort keys are unique and ordered)."""
    low, high = day_bounds(day, day)
    shards = [
        _skip_cursor(
            AuditEvent.by_day.query(
                f"{day.isoformat()}#{shard}",
                AuditEvent.sort_key.between(low, before or high),
                filter_condition=action_filter,
                scan_index_forward=False,
                page_size=page,
            ),
            before,
        )
        for shard in range(settings.FXFER_AUDIT_DAY_SHARDS)
    ]
    yield from heapq.merge(*shards, key=lambda e: e.sort_key, reverse=True)


def _skip_cursor(events, before: str | None) -> Iterator[AuditEvent]:
    for event in events:
        if before is None or event.sort_key < before:
            yield event


def _rows(events: list[AuditEvent], *, from_reply: bool = False) -> Iterator[AuditRow]:
    labels = actor_labels(events)
    for e in events:
        yield AuditRow(
            seq=int(e.seq) if e.seq is not None else None,
            event_id=e.event_id,
            at=e.at,
            action=e.action,
            outcome=e.outcome,
            actor=e.actor,
            actor_label=labels.get(e.actor, e.actor),
            subject=e.subject,
            transfer_id=e.subject.partition(":")[2] if e.subject.startswith("transfer:") else None,
            ip=e.ip,
            user_agent=e.user_agent,
            details=e.details or {},
            sort_key=e.sort_key,
            count=int(e.count) if e.count is not None else None,
            from_reply=from_reply,
        )


def actor_labels(events: list[AuditEvent]) -> dict[str, str]:
    """Addresses for the actors of these events: one BatchGet of the people, one of the guests (recipients)."""
    from accounts.tables import UserRecord
    from transfers.models import Recipient

    user_ids = sorted({e.actor.partition(":")[2] for e in events if e.actor.startswith("user:")} - {""})
    guests = sorted(
        {
            (e.subject.partition(":")[2], e.actor.partition(":")[2])
            for e in events
            if e.actor.startswith("guest:") and e.subject.startswith("transfer:")
        }
    )
    labels = {f"user:{u.user_id}": u.email or u.display_name or u.user_id for u in UserRecord.batch_get(user_ids)}
    labels.update({f"guest:{r.recipient_id}": r.email for r in Recipient.batch_get(guests)})
    return labels


# --- Transfers ----------------------------------------------------------------------------------------------

SEARCH_FIELDS = ("recipient", "domain", "sender", "file")
STATUSES = ("pending", "ready", "closed", "revoked", "expired", "deleted")
# Each status as compliance reads it, in the page's language ("open": a request whose guests may upload).
STATUS_LABELS = {
    "pending": pgettext_lazy("transfer status", "pending"),
    "ready": pgettext_lazy("transfer status", "ready"),
    "open": pgettext_lazy("transfer status", "open"),
    "closed": pgettext_lazy("transfer status", "closed"),
    "revoked": pgettext_lazy("transfer status", "revoked"),
    "expired": pgettext_lazy("transfer status", "expired"),
    "deleted": pgettext_lazy("transfer status", "deleted"),
}
# What a transfer the release gate holds waits for (the sender's badge says the same).
GATE_LABELS = {
    "scan": _("Malware scan"),
    "infected": _("Blocked: malware found"),
    "approval": _("Waiting for approval"),
    "rejected": _("Rejected"),
    "timed_out": _("Not approved in time"),
}
SEARCH_FIELD_LABELS = {
    "recipient": _("Recipient"),
    "domain": _("Recipient's domain"),
    "sender": _("Sender"),
    "file": _("File name"),
}
# What an item of the transfers table is to compliance: files an employee sent, an upload request (files an
# employee asked outside people for), or the reply request of a transfer sent with "allow replies".
KINDS = {"send": _("Sent"), "request": _("Request"), "reply": _("Reply")}
# Presigned GETs issued: a guest's of a sent file, an employee's of a received one.
DOWNLOAD_ACTIONS = frozenset({"download.url_issued", "request.downloaded"})


@dataclass(frozen=True)
class TransferRow:
    transfer_id: str
    created_at: datetime
    status: str
    sender_email: str
    sender_name: str
    subject: str
    recipients: tuple[str, ...]
    file_count: int
    total_bytes: int
    expires_at: datetime
    kind: str = "send"  # a key of KINDS
    closes_at: datetime | None = None  # a request: when uploads stop
    gate: str | None = None  # what the release gate waits for, or a refused approval (transfers.selectors.gate_badge)
    sending_at: datetime | None = None  # the mis-send hold's end

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    @property
    def status_label(self) -> str:
        """As people say it: a request is "open" while its guests may upload (its status is then "ready"); a
        transfer the release gate holds says what it waits for."""
        if self.gate == "hold" and self.sending_at is not None:
            from django.utils import formats, timezone

            at = formats.date_format(timezone.localtime(self.sending_at), "H:i T")
            return _("Sending at %(time)s") % {"time": at}
        if self.gate in GATE_LABELS:
            return GATE_LABELS[self.gate]
        status = "open" if self.kind != "send" and self.status == "ready" else self.status
        return STATUS_LABELS.get(status, status)


@dataclass(frozen=True)
class TransferResults:
    rows: tuple[TransferRow, ...]
    next_cursor: str | None


def transfer_search(
    *,
    field: str = "",
    value: str = "",
    first_day: date,
    last_day: date,
    status: str = "",
    kind: str = "",
    cursor: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> TransferResults:
    """Transfers and upload requests found by one search term (or all of a date range), newest first,
    optionally of one status and one kind (a key of KINDS)."""
    from transfers.models import PARENT_REQUEST, TransferSearchTerm

    now = now or datetime.now(UTC)
    first_day, last_day = checked_range(first_day, last_day)
    limit = max(1, min(int(limit or settings.FXFER_ADMIN_PAGE_SIZE), 200))
    position = _decode(cursor)
    value = value.strip().casefold()
    if field and field not in SEARCH_FIELDS:
        raise AuditError("search_invalid", "Search by recipient, domain, sender or file name.")
    if kind and kind not in KINDS:
        raise AuditError("search_invalid", "Choose sent transfers, requests or replies.")
    if field == "domain":
        value = value.lstrip("@")
    wanted = {"status": status, "kind": kind}
    rows: list[TransferRow] = []
    if field and value:
        term = f"{field}:{value}"
        low, high = day_bounds(first_day, last_day)
        last_key = position.get("lek")
        if last_key is not None and (not isinstance(last_key, dict) or last_key.get("term", {}).get("S") != term):
            raise AuditError("cursor_invalid", "The page link is not valid; start the search again.")
        # A term knows whether it is a request's: the kind filter rides on the Query and saves the BatchGets.
        parent_kind = TransferSearchTerm.parent_kind
        kind_filter = None
        if kind == "send":
            kind_filter = parent_kind.does_not_exist() | (parent_kind != PARENT_REQUEST)
        elif kind:
            kind_filter = parent_kind == PARENT_REQUEST
        for _round in range(10):  # a filter may drop rows: read on, a bounded number of pages
            results = TransferSearchTerm.query(
                term,
                TransferSearchTerm.sort_key.between(low, high),
                filter_condition=kind_filter,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=last_key,
            )
            ids = [hit.transfer_id for hit in results]
            last_key = results.last_evaluated_key
            rows += _transfer_rows(ids, now=now, **wanted)
            if len(rows) >= limit or not last_key:
                break
        return TransferResults(rows=tuple(rows), next_cursor=_encode({"lek": last_key}) if last_key else None)

    month_text = position.get("m") or _month_of(last_day)
    if not (isinstance(month_text, str) and _MONTH.match(month_text)):
        raise AuditError("cursor_invalid", "The page link is not valid; start the search again.")
    month = min(date.fromisoformat(f"{month_text}-01"), last_day.replace(day=1))
    last_key = position.get("lek")
    same_month = isinstance(last_key, dict) and last_key.get("created_month", {}).get("S") == month_text
    if last_key is not None and not same_month:
        raise AuditError("cursor_invalid", "The page link is not valid; start the search again.")
    try:
        return _range_page(
            month=month, last_key=last_key, first_day=first_day, last_day=last_day, limit=limit, wanted=wanted, now=now
        )
    except PynamoDBException:
        # A month that could not be read is not a month without transfers: no page rather than one with a hole.
        raise AuditError("unavailable", "AWS did not answer. Nothing was lost; try again.") from None


# A date range is read by month (the transfers' `by-month` index: one partition per local month, sorted by
# created_at), newest first: the last month alone (a busy month fills the page by itself), then every other month
# of the range at once, in parallel on the process's one DynamoDB client (thread-safe; PynamoDB's pool holds 10
# connections). A year is at most 13 Queries, whatever days it has transfers on; reading stops once the page is
# full, and the page and its cursor are those of reading one month after the other.
_MONTH_THREADS = 8
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])\Z")
_BY_MONTH_KEY = ("transfer_id", "created_month", "created_at")  # what a by-month Query's LastEvaluatedKey holds


def _month_of(day: date) -> str:
    return day.strftime("%Y-%m")


def _month_before(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


@dataclass(frozen=True)
class _MonthRead:
    month: date
    items: list  # (transfer, its position as a LastEvaluatedKey), newest first
    last_key: dict | None  # DynamoDB's: the month has more than was read


def _read_month(month: date, last_key: dict | None, limit: int, first_day: date, last_day: date) -> _MonthRead:
    from transfers.models import Transfer

    month_end = (month + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    low, high = day_bounds(max(first_day, month), min(last_day, month_end))
    results = Transfer.by_month.query(
        _month_of(month),
        Transfer.created_at.between(datetime.fromisoformat(low), datetime.fromisoformat(high) - timedelta.resolution),
        scan_index_forward=False,
        limit=limit,
        last_evaluated_key=last_key,
    )
    items = []
    for transfer in results:
        serialized = transfer.serialize()
        items.append((transfer, {name: serialized[name] for name in _BY_MONTH_KEY}))
    return _MonthRead(month=month, items=items, last_key=results.last_evaluated_key)


def _range_page(
    *, month: date, last_key: dict | None, first_day: date, last_day: date, limit: int, wanted: dict, now: datetime
) -> TransferResults:
    """A page of the range's transfers, newest first: the first `limit` rows that match, read from (month,
    last_key) back to first_day's month. The first month is read alone, the rest together; the cursor resumes
    right after the last row shown."""
    rows: list[TransferRow] = []
    first_month = first_day.replace(day=1)
    alone = True
    with ThreadPoolExecutor(max_workers=_MONTH_THREADS) as pool:
        while month >= first_month:
            months = [month]
            if not alone:
                while months[-1] > first_month:
                    months.append(_month_before(months[-1]))
            need = limit - len(rows)
            starts = [last_key] + [None] * (len(months) - 1)
            count = len(months)
            reads = list(pool.map(_read_month, months, starts, [need] * count, [first_day] * count, [last_day] * count))
            alone = False
            for read in reads:
                for number, (transfer, position) in enumerate(read.items):
                    row = _transfer_row(transfer, now)
                    if not _matches(row, **wanted):
                        continue
                    rows.append(row)
                    if len(rows) < limit:
                        continue
                    if number + 1 < len(read.items) or read.last_key:
                        cursor = {"m": _month_of(read.month), "lek": position}
                        return TransferResults(rows=tuple(rows), next_cursor=_encode(cursor))
                    before = _month_before(read.month)
                    cursor = _encode({"m": _month_of(before)}) if before >= first_month else None
                    return TransferResults(rows=tuple(rows), next_cursor=cursor)
                if read.last_key:
                    # The filters left the page short of a month that has more: read on in that month first (the
                    # later months of this batch were read too early and are read again in their turn).
                    month, last_key = read.month, read.last_key
                    break
                month, last_key = _month_before(read.month), None
    return TransferResults(rows=tuple(rows), next_cursor=None)


def _status(transfer, now: datetime) -> str:
    from transfers.services.common import status_at

    return status_at(transfer, now)


def _kind(transfer) -> str:
    from transfers.models import KIND_REQUEST

    if transfer.kind == KIND_REQUEST:
        return "reply" if transfer.reply_to else "request"
    return "send"


def _matches(row: TransferRow, *, status: str, kind: str) -> bool:
    return (not status or row.status == status) and (not kind or row.kind == kind)


def _transfer_rows(ids: list[str], *, status: str, kind: str, now: datetime) -> list[TransferRow]:
    from transfers.models import Transfer

    found = {t.transfer_id: t for t in Transfer.batch_get(ids)} if ids else {}
    rows = [_transfer_row(found[i], now) for i in ids if i in found]
    return [row for row in rows if _matches(row, status=status, kind=kind)]


def _transfer_row(transfer, now: datetime) -> TransferRow:
    from transfers.selectors import gate_badge

    status = _status(transfer, now)
    return TransferRow(
        transfer_id=transfer.transfer_id,
        created_at=transfer.created_at,
        status=status,
        sender_email=transfer.owner_email,
        sender_name=transfer.owner_name,
        subject=transfer.subject,
        recipients=tuple(a for a in (transfer.recipient_emails or "").split(",") if a),
        file_count=int(transfer.file_count or 0),
        total_bytes=int(transfer.total_bytes or 0),
        expires_at=transfer.expires_at,
        kind=_kind(transfer),
        closes_at=transfer.closes_at,
        gate=gate_badge(transfer, status, now),
        sending_at=transfer.release_not_before,
    )


@dataclass(frozen=True)
class FileRow:
    file_id: str
    name: str
    size: int
    state: str
    checksum_sha256: str | None
    etag: str | None
    refused_reason: str | None
    uploader_email: str | None = None  # a request's file: the guest who uploaded it
    created_at: datetime | None = None
    verified_at: datetime | None = None
    # The malware scan (transfers.services.scanning): its state, the threat or reason, compliance's release.
    parent_id: str = ""
    scan_state: str = ""
    scan_detail: str | None = None
    scan_override_reason: str | None = None
    # The SHA-256 the uploader's browser computed (base64): for a file sent in parts, their word only.
    declared_sha256: str | None = None
    checksum_crc64nvme: str | None = None  # S3's full-object CRC-64/NVME (base64), for a file sent in parts

    @property
    def checksum_by(self) -> str | None:
        """Who vouches for the SHA-256 shown: "s3" (S3 checked it on upload) or "sender" (the uploader's word)."""
        return "s3" if self.checksum_sha256 else "sender" if self.declared_sha256 else None

    @property
    def scan_text(self) -> str:
        from transfers.services.scanning import scan_state_text

        return scan_state_text(self.scan_state)

    @property
    def scan_blocked(self) -> bool:
        """Compliance may release it (a false positive, a file that could not be scanned, a scan that hangs)."""
        from transfers.services.scanning import PASSING

        return bool(self.scan_state) and self.scan_state not in PASSING

    @property
    def sha256_hex(self) -> str | None:
        """The SHA-256 as `sha256sum` prints it (S3 reports it in base64), as the employees' pages show it: the
        one S3 checked, else the one the uploader's browser declared (`checksum_by` says which)."""
        try:
            return base64.b64decode(self.checksum_sha256 or self.declared_sha256 or "", validate=True).hex() or None
        except (binascii.Error, ValueError):
            return None


@dataclass(frozen=True)
class RecipientRow:
    recipient_id: str
    email: str
    downloads: int
    file_downloads: dict
    last_download_at: datetime | None
    link_sent_at: datetime | None
    locked: bool
    finished_at: datetime | None = None  # a request's guest: when they said they were done, and their note
    note: str | None = None


@dataclass(frozen=True)
class RequestTerms:
    """What an upload request allows each guest, when uploads stop and how long received files are kept."""

    closes_at: datetime | None
    keep_days: int
    max_files: int
    max_file_bytes: int
    max_total_bytes: int
    allowed_extensions: tuple[str, ...]  # empty: any type the site allows


@dataclass(frozen=True)
class ReplyFile:
    """The reply request of a transfer sent with "allow replies": what its recipients sent back."""

    request: TransferRow
    held: bool
    terms: RequestTerms
    files: tuple[FileRow, ...]
    guests: tuple[RecipientRow, ...]
    downloads: tuple[AuditRow, ...]  # the sender's downloads of what came back


@dataclass(frozen=True)
class TransferFile:
    """Everything compliance sees of one transfer (or upload request)."""

    transfer: TransferRow
    owner_id: str
    message: str
    download_limit: int
    released_at: datetime | None
    revoked_at: datetime | None
    held: bool
    hold_reason: str | None
    held_at: datetime | None
    files: tuple[FileRow, ...]
    recipients: tuple[RecipientRow, ...]  # a request's guests
    timeline: tuple[AuditRow, ...]  # a transfer's own events and its reply request's, oldest first
    downloads: tuple[AuditRow, ...]  # each download URL issued: who, when, from where
    deletion_receipts: tuple[AuditRow, ...]
    terms: RequestTerms | None = None  # an upload request (a reply request too)
    reply_to: str | None = None  # a reply request: the transfer whose recipients reply through it
    reply: ReplyFile | None = None  # a transfer that allows replies: its reply request


# Deletion receipts are audit events of issue 6 (expiry and deletion); any of these actions is one.
DELETION_ACTIONS = frozenset({"file.deleted", "transfer.deleted", "transfer.expired"})


def transfer_file(*, transfer_id: str, now: datetime | None = None) -> TransferFile | None:
    """One transfer or upload request with its files, recipients (guests) and full audit timeline; a transfer
    that allows replies brings its reply request's files, guests and events. None when there is no such item."""
    from transfers.models import KIND_REQUEST
    from transfers.services.common import transfer_get

    now = now or datetime.now(UTC)
    transfer = transfer_get(transfer_id)
    if transfer is None:
        return None
    own = tuple(_rows(_subject_events(transfer_id)))
    timeline, reply = own, None
    replies = transfer_get(transfer.reply_request_id) if transfer.reply_request_id else None
    if replies is not None:
        theirs = tuple(_rows(_subject_events(replies.transfer_id), from_reply=True))
        timeline = tuple(heapq.merge(own, theirs, key=lambda row: row.sort_key))
        reply = ReplyFile(
            request=_transfer_row(replies, now),
            held=bool(replies.held),
            terms=_terms(replies),
            files=_file_rows(replies.transfer_id),
            guests=_recipient_rows(replies.transfer_id),
            downloads=_downloads(theirs),
        )
    return TransferFile(
        transfer=_transfer_row(transfer, now),
        owner_id=transfer.owner_id,
        message=transfer.message,
        download_limit=int(transfer.download_limit),
        released_at=transfer.released_at,
        revoked_at=transfer.revoked_at,
        held=bool(transfer.held),
        hold_reason=transfer.hold_reason,
        held_at=transfer.held_at,
        files=_file_rows(transfer_id),
        recipients=_recipient_rows(transfer_id),
        timeline=timeline,
        downloads=_downloads(own),
        deletion_receipts=tuple(r for r in timeline if r.action in DELETION_ACTIONS),
        terms=_terms(transfer) if transfer.kind == KIND_REQUEST else None,
        reply_to=transfer.reply_to,
        reply=reply,
    )


def _subject_events(transfer_id: str) -> list[AuditEvent]:
    return list(AuditEvent.by_subject.query(f"transfer:{transfer_id}"))


def _downloads(rows: tuple[AuditRow, ...]) -> tuple[AuditRow, ...]:
    return tuple(r for r in rows if r.action in DOWNLOAD_ACTIONS and r.outcome == "ok")


def _terms(request) -> RequestTerms:
    return RequestTerms(
        closes_at=request.closes_at,
        keep_days=int(request.keep_days or 0),
        max_files=int(request.max_files or 0),
        max_file_bytes=int(request.max_file_bytes or 0),
        max_total_bytes=int(request.max_total_bytes or 0),
        allowed_extensions=tuple(e for e in (request.allowed_extensions or "").split(",") if e),
    )


def _file_rows(parent_id: str) -> tuple[FileRow, ...]:
    from transfers.models import File
    from transfers.services.scanning import scan_state

    now = datetime.now(UTC)
    return tuple(
        FileRow(
            file_id=f.file_id,
            name=f.name,
            size=int(f.verified_size or f.declared_size),
            state=f.state,
            checksum_sha256=f.checksum_sha256,
            declared_sha256=f.declared_sha256,
            checksum_crc64nvme=f.checksum_crc64nvme,
            etag=(f.etag or "").strip('"') or None,
            refused_reason=f.refused_reason,
            uploader_email=f.uploader_email,
            created_at=f.created_at,
            verified_at=f.verified_at,
            parent_id=f.parent_id,
            scan_state=scan_state(f, now),
            scan_detail=f.scan_detail,
            scan_override_reason=f.scan_override_reason,
        )
        for f in File.query(parent_id)
    )


def _recipient_rows(parent_id: str) -> tuple[RecipientRow, ...]:
    from transfers.models import Recipient

    return tuple(
        RecipientRow(
            recipient_id=r.recipient_id,
            email=r.email,
            downloads=int(r.downloads_used or 0),
            file_downloads={k: int(v) for k, v in (r.file_downloads.as_dict() if r.file_downloads else {}).items()},
            last_download_at=r.last_download_at,
            link_sent_at=r.link_sent_at,
            locked=bool(r.locked),
            finished_at=r.finished_at,
            note=r.note,
        )
        for r in Recipient.query(parent_id)
    )


# --- Daily statistics ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFigures:
    day: date
    status: str  # "ok", "failed", or "missing" (the job has not run for the day)
    figures: dict
    error: str | None
    computed_at: datetime | None


def days_figures(days: list[date], *, scope: str = SCOPE_ALL) -> list[DayFigures]:
    """The stored figures of these days for one scope (one BatchGet), in the days' order."""
    found = {item.day: item for item in DailyStats.batch_get([(d.isoformat(), scope) for d in days])}
    return [_day_figures(d, found.get(d.isoformat())) for d in days]


def _day_figures(day: date, item: DailyStats | None) -> DayFigures:
    if item is None:
        return DayFigures(day=day, status="missing", figures={}, error=None, computed_at=None)
    return DayFigures(
        day=day, status=item.status, figures=item.figures or {}, error=item.error, computed_at=item.computed_at
    )


@dataclass(frozen=True)
class DayReport:
    day: DayFigures
    departments: tuple[tuple[str, dict], ...]


def day_report(*, day: date) -> DayReport:
    """One day's company figures and each department's (one Query of the day's items)."""
    items = list(DailyStats.query(day.isoformat()))
    whole = next((i for i in items if i.scope == SCOPE_ALL), None)
    departments = tuple(
        (i.scope.removeprefix(DEPARTMENT_SCOPE), i.figures or {})
        for i in sorted(items, key=lambda i: i.scope)
        if i.scope.startswith(DEPARTMENT_SCOPE)
    )
    return DayReport(day=_day_figures(day, whole), departments=departments)


@dataclass(frozen=True)
class MonthReport:
    month: date  # its first day
    days: tuple[DayFigures, ...]
    totals: dict
    departments: tuple[tuple[str, dict], ...]
    failed_days: tuple[date, ...]
    missing_days: tuple[date, ...]


def month_report(*, month: date) -> MonthReport:
    """A month's days (company figures), its totals and each department's totals (one Query per day)."""
    from reports.aggregation import FIGURES

    first = month.replace(day=1)
    days = [first + timedelta(days=i) for i in range(calendar.monthrange(first.year, first.month)[1])]
    reports = [day_report(day=d) for d in days]
    totals = {name: 0 for name in FIGURES}
    domains: set[str] = set()
    by_department: dict[str, dict] = {}
    for report in reports:
        if report.day.status != "ok":
            continue
        for name in FIGURES:
            totals[name] += int(report.day.figures.get(name, 0))
        domains.update(report.day.figures.get("domains", ()))
        for department, figures in report.departments:
            sums = by_department.setdefault(department, {name: 0 for name in FIGURES} | {"domains": set()})
            for name in FIGURES:
                sums[name] += int(figures.get(name, 0))
            sums["domains"].update(figures.get("domains", ()))
    # Distinct domains over the month, not the sum of each day's count.
    totals["external_domains"] = len(domains)
    for sums in by_department.values():
        sums["external_domains"] = len(sums.pop("domains"))
    return MonthReport(
        month=first,
        days=tuple(r.day for r in reports),
        totals=totals,
        departments=tuple(sorted(by_department.items())),
        failed_days=tuple(r.day.day for r in reports if r.day.status == "failed"),
        missing_days=tuple(r.day.day for r in reports if r.day.status == "missing" and r.day.day < today()),
    )


def today(now: datetime | None = None) -> date:
    return local_day(now or datetime.now(UTC))
