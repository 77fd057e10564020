"""The malware scan (issue 16): every uploaded file, sent or received, is scanned before anyone may download it,
and a transfer is released only when every file is clean. Fail closed: no verdict, no release.

The scanner (settings.FXFER_SCANNER):

    guardduty  production. GuardDuty Malware Protection for S3 scans each new object under `files/` itself and
               writes its verdict as the object tag GuardDutyMalwareScanStatus, then sends the EventBridge event
               "GuardDuty Malware Protection Object Scan Result", which reaches transfers.jobs.on_scan_result.
               The event may come before fxfer has verified the object, or be lost: every later verification of
               the file, the hourly heal and a refused download read the tag instead (GetObjectTagging).
    eicar      the local and test stand-in: when a file is verified it reads the object and decides at once
               (infected when it holds the EICAR test string), then records the verdict through the same
               function as the GuardDuty event, so tests run the production path.
    off        only when set explicitly: files verified while it is off are released unscanned, and every page
               says so.

Only NO_THREATS_FOUND is clean. THREATS_FOUND blocks the file (no download anywhere, no release), and its
sender (for a received file: the employee who asked for it) and compliance are told by mail; UNSUPPORTED,
ACCESS_DENIED and FAILED ("could not be scanned") block it the same way until compliance decides. No verdict
within FXFER_SCAN_TIMEOUT_MINUTES: the file stays blocked and the pages say the scan has not finished.
Compliance may release a blocked file with a reason (file_scan_release, audited "file.scan_overridden"); the
release names the verdict it overrode, so a later different verdict blocks the file again.

A verdict commits with its audit event (and its mails) in one transaction whose operation names the file and
the version scanned ("scan:<file id>:<version>"): a second event for the same version changes nothing, and a
verdict about another version than the verified one is ignored (downloads are pinned to the verified version).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _

from fxfer import i18n
from fxfer.aws import transient
from fxfer.change import Change, ChangeRefused
from transfers import mails, storage
from transfers.errors import TransferError
from transfers.models import FILE_VERIFIED, PARENT_REQUEST, PENDING, File, Transfer
from transfers.services.common import (
    SWEEP_PAGE,
    audit,
    file_get,
    later,
    shard_hits,
    transfer_get,
    unavailable_when_aws_fails,
    utc,
)
from transfers.services.gate import CHECKS

logger = logging.getLogger(__name__)

SCANNER_GUARDDUTY, SCANNER_EICAR, SCANNER_OFF = "guardduty", "eicar", "off"
SCANNERS = (SCANNER_GUARDDUTY, SCANNER_EICAR, SCANNER_OFF)

# GuardDuty's verdicts (the tag's values and the event's scanResultStatus).
CLEAN = "NO_THREATS_FOUND"
INFECTED = "THREATS_FOUND"
UNSCANNABLE = frozenset({"UNSUPPORTED", "ACCESS_DENIED", "FAILED"})
VERDICTS = frozenset({CLEAN, INFECTED, *UNSCANNABLE})
TAG = "GuardDutyMalwareScanStatus"
EVENT_DETAIL_TYPE = "GuardDuty Malware Protection Object Scan Result"
NO_VERDICT = "none"  # what compliance's release of a file without a verdict records as the verdict it overrode

# What the pages show for a verified file (scan_state), in words (scan_state_text).
STATE_NOT_SCANNED = "not_scanned"  # verified while the scanner was off
STATE_SCANNING = "scanning"
STATE_OVERDUE = "overdue"  # no verdict within FXFER_SCAN_TIMEOUT_MINUTES
STATE_CLEAN = "clean"
STATE_INFECTED = "infected"
STATE_UNSCANNABLE = "unscannable"
STATE_RELEASED = "released"  # blocked, then released by compliance
PASSING = frozenset({STATE_NOT_SCANNED, STATE_CLEAN, STATE_RELEASED})
BLOCKER = "scan"

# The EICAR test file starts with this 68-byte string (kept in two halves so no scanner quarantines this source).
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
EICAR_THREAT = "EICAR-Test-File (not a virus)"


def scanner() -> str:
    return settings.FXFER_SCANNER


def scanning_on() -> bool:
    return scanner() != SCANNER_OFF


# --- what a file's scan state is (pure: pages, the gate and downloads ask it) ---------------------------------


def scan_state(file: File, now: datetime) -> str:
    """The scan state of a verified file as the pages name it ("" for a file not verified)."""
    if file.state != FILE_VERIFIED:
        return ""
    if not file.scan_required:
        return STATE_NOT_SCANNED
    status = file.scan_status
    if file.scan_overridden_at is not None and file.scan_overridden_status == (status or NO_VERDICT):
        return STATE_RELEASED
    if status == CLEAN:
        return STATE_CLEAN
    if status == INFECTED:
        return STATE_INFECTED
    if status:
        return STATE_UNSCANNABLE
    verified_at = file.verified_at or now
    if verified_at + timedelta(minutes=settings.FXFER_SCAN_TIMEOUT_MINUTES) <= now:
        return STATE_OVERDUE
    return STATE_SCANNING


def scan_state_text(state: str) -> str:
    """The scan state in words, in the page's language."""
    return {
        STATE_NOT_SCANNED: _("Not scanned for malware (scanning is off)"),
        STATE_SCANNING: _("Being scanned for malware"),
        STATE_OVERDUE: _("Malware scan not finished: held until it is"),
        STATE_CLEAN: _("Scanned: no malware found"),
        STATE_INFECTED: _("Malware found: blocked"),
        STATE_UNSCANNABLE: _("Could not be scanned for malware: blocked until compliance decides"),
        STATE_RELEASED: _("Released by compliance after the malware scan"),
    }.get(state, "")


def file_passes(file: File, now: datetime) -> bool:
    return scan_state(file, now) in PASSING


def scan_check(transfer: Transfer, files, now: datetime) -> tuple[str, ...]:
    """The release gate's check: blocked while any file has no clean verdict (or compliance's release)."""
    return () if all(file_passes(f, now) for f in files) else (BLOCKER,)


CHECKS.append(scan_check)


def verify_actions() -> list:
    """What a file's verification also records: that it needs a verdict, while a scanner is on."""
    return [File.scan_required.set(True)] if scanning_on() else []


def download_refusal(file: File, now: datetime) -> TransferError | None:
    """Why a verified file may not be downloaded yet (None: it may)."""
    state = scan_state(file, now)
    if state in PASSING:
        return None
    message = {
        STATE_INFECTED: _("This file was found to contain malware and is blocked."),
        STATE_UNSCANNABLE: _("This file could not be scanned for malware; it stays blocked until compliance decides."),
    }.get(state, _("This file is still being scanned for malware. Please try again in a few minutes."))
    return TransferError("state_conflict", message, scan=state)


# --- recording a verdict (the GuardDuty event, the tag, the stand-in: one path) -------------------------------


@dataclass(frozen=True)
class ScanRecorded:
    key: str
    # "recorded" | "duplicate" (a verdict for this version is there) | "stale" (another version than the verified
    # one) | "not_verified" (the file is not verified yet: its verification reads the tag) | "unknown_key"
    outcome: str
    status: str | None = None
    released: bool = False


def _ref(file: File) -> str:
    return file.version_id or (file.etag or "").strip('"')


def scan_result_record(
    *,
    key: str,
    status: str,
    source: str,
    version_id: str | None = None,
    etag: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
    release: bool = True,
) -> ScanRecorded:
    """Record a scanner's verdict on the object at `key` (idempotent: at-least-once callers are fine). The
    verdict, its audit event ("file.scanned", "file.infected", "file.unscannable") and, for a blocked file, the
    mails to its sender and compliance commit in one transaction; then a clean file's transfer is released
    (`release`), which the verification that asked for the scan does itself."""
    now = utc(now)
    if status not in VERDICTS:
        # A value GuardDuty may add later: not clean, so blocked, and a person decides.
        detail, status = f"{status}: {detail}" if detail else status, "FAILED"
    parsed = storage.parse_file_key(key)
    file = file_get(*parsed) if parsed else None
    if file is None or file.s3_key != key:
        return ScanRecorded(key=key, outcome="unknown_key")
    if file.state != FILE_VERIFIED:
        return ScanRecorded(key=key, outcome="not_verified")
    if _stale(file, version_id=version_id, etag=etag):
        return ScanRecorded(key=key, outcome="stale")
    if file.scan_status:
        return ScanRecorded(key=key, outcome="duplicate", status=file.scan_status, released=_finish(file, now, release))
    change = Change(op=f"scan:{file.file_id}:{_ref(file)}", now=now)
    change.update(
        file,
        actions=[
            File.scan_status.set(status),
            File.scan_at.set(now),
            File.scan_detail.set(detail[:500]) if detail else File.scan_detail.remove(),
            File.scan_source.set(source),
        ],
        condition=(File.state == FILE_VERIFIED)
        & (File.version_id == file.version_id if file.version_id else File.version_id.does_not_exist())
        & File.scan_status.does_not_exist(),
        label="file",
    )
    action = "file.scanned" if status == CLEAN else "file.infected" if status == INFECTED else "file.unscannable"
    change.audit(
        action,
        actor=f"scanner:{source}",
        subject=f"transfer:{file.parent_id}",
        outcome="ok" if status == CLEAN else "refused",
        file_id=file.file_id,
        name=file.name,
        result=status,
        detail=detail,
        version_id=file.version_id,
    )
    if status != CLEAN:
        _blocked_mails(change, file=file, status=status, detail=detail, now=now)
    try:
        change.commit()
    except ChangeRefused as exc:
        if exc.failed("file") is None:
            raise
        # Another verdict (or the file's deletion) came first: it stands.
        file.refresh(consistent_read=True)
        return ScanRecorded(key=key, outcome="duplicate", status=file.scan_status)
    logger.info("scan.recorded", extra={"result": status, "source": source, "file_id": file.file_id})
    file.scan_status = status
    return ScanRecorded(key=key, outcome="recorded", status=status, released=_finish(file, now, release))


def _stale(file: File, *, version_id: str | None, etag: str | None) -> bool:
    """A verdict about another version than the verified one (downloads are pinned to that version)."""
    if file.version_id and version_id:
        return version_id != file.version_id
    if etag and file.etag:
        return etag.strip('"') != file.etag.strip('"')
    return False


def _finish(file: File, now: datetime, release: bool) -> bool:
    """After a verdict: a transfer whose files are now all clean leaves (re-entrant; the gate decides)."""
    # A blocking verdict calls it too: the release's blocked path then records what the transfer waits for
    # (Transfer.gate: "infected"), which the sender's list shows.
    if not release or file.parent_kind == PARENT_REQUEST:
        return False
    from transfers.services.sending import transfer_release  # it imports the gate, which this module feeds

    return transfer_release(transfer_id=file.parent_id, now=now).released


def _blocked_mails(change: Change, *, file: File, status: str, detail: str | None, now: datetime) -> None:
    """The owner (who sent the file, or asked for it) and compliance learn that a file is blocked."""
    parent = transfer_get(file.parent_id)
    if parent is None:
        return
    received = file.parent_kind == PARENT_REQUEST
    path = "requests" if received and not parent.reply_to else "transfers"
    link_id = parent.reply_to if received and parent.reply_to else parent.transfer_id
    fields = {
        "file_name": file.name,
        "infected": status == INFECTED,
        "threat": detail or "",
        "subject": parent.subject,
        "uploader": file.uploader_email if received else None,
        "at": now,
    }
    with i18n.in_owner_language(parent):
        draft = mails.scan_blocked_mail(
            to=parent.owner_email, link=f"{settings.FXFER_BASE_URL}/{path}/{link_id}/", compliance=False, **fields
        )
    change.mail(
        key=f"scan_blocked:{file.file_id}:owner", kind="scan_blocked", parent_id=file.parent_id, **draft.fields()
    )
    for index, address in enumerate(settings.FXFER_COMPLIANCE_EMAIL):
        draft = mails.scan_blocked_mail(
            to=address,
            link=f"{settings.FXFER_BASE_URL}/admin/transfers/{file.parent_id}/",
            compliance=True,
            owner=parent.owner_email,
            **fields,
        )
        change.mail(
            key=f"scan_blocked:{file.file_id}:compliance:{index}",
            kind="scan_blocked",
            parent_id=file.parent_id,
            **draft.fields(),
        )


# --- asking the scanner ---------------------------------------------------------------------------------------


def scan_after_verify(file: File, *, now: datetime, release: bool = False) -> ScanRecorded | None:
    """Right after a verification (and on every repeat of it, the heal, a refused download): get a verdict for
    a verified file that needs one and has none. The stand-in scans now; GuardDuty's tag is read in case its
    event came first or was lost. None when there is nothing to ask (yet)."""
    if file.state != FILE_VERIFIED or not file.scan_required or file.scan_status:
        return None
    try:
        return _ask_scanner(file, now=now, release=release)
    except Exception as exc:
        if not transient(exc):
            raise
        # AWS busy: the file stays blocked, and the event, the next repeat or the hourly heal brings the verdict.
        logger.warning("scan.ask_failed", extra={"file_id": file.file_id, "error": type(exc).__name__})
        return None


def _ask_scanner(file: File, *, now: datetime, release: bool) -> ScanRecorded | None:
    if scanner() == SCANNER_EICAR:
        status, detail = eicar_scan(key=file.s3_key, version_id=file.version_id)
        source = SCANNER_EICAR
    elif scanner() == SCANNER_GUARDDUTY:
        status, detail, source = storage.object_tag(key=file.s3_key, version_id=file.version_id, name=TAG), None, "tag"
        if status is None:
            return None  # not scanned yet: the event (or a later look at the tag) brings the verdict
    else:
        return None  # the scanner was turned off after this file needed a verdict: it waits for compliance
    return scan_result_record(
        key=file.s3_key,
        version_id=file.version_id,
        status=status,
        detail=detail,
        source=source,
        now=now,
        release=release,
    )


def eicar_scan(*, key: str, version_id: str | None) -> tuple[str, str | None]:
    """The stand-in scanner: THREATS_FOUND when the object holds the EICAR test string anywhere, else clean."""
    tail = b""
    for chunk in storage.object_chunks(key=key, version_id=version_id):
        window = tail + chunk
        if EICAR in window:
            return INFECTED, EICAR_THREAT
        tail = window[-(len(EICAR) - 1) :]
    return CLEAN, None


def scan_event_record(event: dict, *, now: datetime | None = None) -> ScanRecorded | None:
    """One EventBridge "GuardDuty Malware Protection Object Scan Result" event → its verdict recorded. None for
    an event about another bucket or of another kind."""
    detail = event.get("detail") or {}
    if event.get("detail-type") not in {None, EVENT_DETAIL_TYPE}:
        return None
    s3_object = detail.get("s3ObjectDetails") or {}
    if s3_object.get("bucketName") != settings.FXFER_BUCKET or not s3_object.get("objectKey"):
        return None
    result = detail.get("scanResultDetails") or {}
    status = result.get("scanResultStatus") or detail.get("scanStatus") or "FAILED"
    threats = ", ".join(t.get("name", "") for t in result.get("threats") or [] if isinstance(t, dict)) or None
    return scan_result_record(
        key=s3_object["objectKey"],
        version_id=s3_object.get("versionId") or None,
        etag=s3_object.get("eTag") or None,
        status=status,
        detail=threats,
        source="guardduty",
        now=now,
    )


@dataclass(frozen=True)
class ScanHealed:
    checked: int = 0  # verified files of pending transfers without a verdict
    recorded: int = 0  # verdicts found now (the tag of a lost event, the stand-in)
    overdue: int = 0  # still none after FXFER_SCAN_TIMEOUT_MINUTES: they stay blocked
    complete: bool = True


def scan_heal(
    *, now: datetime | None = None, deadline: datetime | None = None, page_size: int = SWEEP_PAGE
) -> ScanHealed:
    """Hourly: for the verified files of unreleased transfers that still have no verdict, read the verdict again
    (a lost event leaves GuardDuty's tag); log the files past FXFER_SCAN_TIMEOUT_MINUTES, which stay blocked.
    Walks the pending index (no Scan); received files are settled when the employee asks for them."""
    from transfers.services.deletion import out_of_time

    now = utc(now)
    checked = recorded = overdue = 0
    if not scanning_on():
        return ScanHealed()
    for hit in shard_hits(Transfer.by_pending, Transfer.created_at <= now, page_size=page_size):
        if out_of_time(deadline):
            return ScanHealed(checked=checked, recorded=recorded, overdue=overdue, complete=False)
        transfer = transfer_get(hit.transfer_id)
        if transfer is None or transfer.status != PENDING or transfer.deleted_at:
            continue
        for file in File.query(transfer.transfer_id, consistent_read=True):
            if file.state != FILE_VERIFIED or not file.scan_required or file.scan_status:
                continue
            checked += 1
            done = scan_after_verify(file, now=now, release=True)
            if done is not None and done.outcome == "recorded":
                recorded += 1
            elif scan_state(file, now) == STATE_OVERDUE:
                overdue += 1
                logger.warning("scan.overdue", extra={"transfer_id": file.parent_id, "file_id": file.file_id})
    return ScanHealed(checked=checked, recorded=recorded, overdue=overdue)


def settled(file: File, *, now: datetime) -> File:
    """A file about to be downloaded: when it waits for a verdict, ask once more (the tag of a lost event)."""
    if file.state == FILE_VERIFIED and file.scan_required and not file.scan_status:
        done = scan_after_verify(file, now=now, release=True)
        if done is not None and done.outcome in {"recorded", "duplicate"}:
            file.refresh(consistent_read=True)
    return file


def refuse_unless_clean(file: File, *, event: str, ids: dict, **details) -> None:
    """Raise the malware scan's refusal of a verified file, audited as `event` refused (reason scan_<state>),
    unless it passed. `ids` are the audit's actor, transfer_id, now, ip and user_agent."""
    refusal = download_refusal(file, ids["now"])
    if refusal is not None:
        audit(event, **ids, outcome="refused", reason=f"scan_{refusal.params['scan']}", file_id=file.file_id, **details)
        raise refusal


def clean_download_url(
    file: File, *, event: str, ids: dict, role: str | None = None, **details
) -> tuple[str, datetime]:
    """A short-lived presigned GET (attachment) of a verified file that passed the malware scan (asked once
    more when its verdict is missing), and when it expires; audited as `event`, refused or with the file's name,
    size, `role` and `details`. For the employees who may inspect a file (no download count is kept)."""
    now = ids["now"]
    refuse_unless_clean(settled(file, now=now), event=event, ids=ids, role=role)
    url = storage.download_url(key=file.s3_key, version_id=file.version_id, filename=file.name)
    size = int(file.verified_size or 0)
    audit(event, **ids, file_id=file.file_id, name=file.name, size=size, role=role, **details)
    return url, later(now, settings.FXFER_DOWNLOAD_URL_SECONDS)


# --- compliance's release of a blocked file ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScanReleased:
    transfer_id: str
    file_id: str
    overridden: str  # the verdict released ("none": none yet)
    released: bool  # the transfer left with it


@unavailable_when_aws_fails
def file_scan_release(
    *,
    officer_id: str,
    transfer_id: str,
    file_id: str,
    reason: str,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> ScanReleased:
    """Compliance releases a blocked file (a false positive, a file the scanner could not read) with a reason:
    the file may be downloaded, and its transfer leaves once nothing else blocks it. The release and its
    "file.scan_overridden" event commit together; the release names the verdict it overrode."""
    now = utc(now)
    file = file_get(transfer_id, file_id)
    if file is None:
        raise TransferError("not_found")
    if file.state != FILE_VERIFIED or file_passes(file, now):
        raise TransferError("state_conflict", _("This file is not blocked by the malware scan."))
    overridden = file.scan_status or NO_VERDICT
    change = Change(op=f"scan_release:{file_id}:{overridden}", now=now)
    change.update(
        file,
        actions=[
            File.scan_overridden_status.set(overridden),
            File.scan_overridden_by.set(f"user:{officer_id}"),
            File.scan_overridden_at.set(now),
            File.scan_override_reason.set(reason),
        ],
        condition=(File.state == FILE_VERIFIED)
        & (File.scan_status == file.scan_status if file.scan_status else File.scan_status.does_not_exist()),
        label="file",
    )
    change.audit(
        "file.scan_overridden",
        actor=f"user:{officer_id}",
        subject=f"transfer:{transfer_id}",
        ip=ip,
        user_agent=user_agent,
        by="compliance",
        reason=reason,
        file_id=file_id,
        name=file.name,
        result=overridden,
        detail=file.scan_detail,
    )
    try:
        change.commit()
    except ChangeRefused as exc:
        if exc.failed("file") is not None:
            raise TransferError("state_conflict", _("The file's scan result changed meanwhile; look again.")) from None
        raise
    file.scan_overridden_status, file.scan_overridden_at = overridden, now
    return ScanReleased(
        transfer_id=transfer_id, file_id=file_id, overridden=overridden, released=_finish(file, now, release=True)
    )
