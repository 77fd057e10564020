"""Transfers in DynamoDB (PynamoDB only; no ORM models).

Access patterns → keys (every request path is a GetItem or a Query; no Scan):
- a transfer by id (owner pages, guest pages): `transfers` hash key `transfer_id`
- a sender's transfers, newest first: GSI `by-owner` (owner_id, created_at)
- one day's transfers (the sweep's healer): GSI `by-day` (created_day, created_at)
- a date range's transfers (admin, compliance): GSI `by-month` (created_month, created_at), one Query a month
- a transfer's files / recipients: `files` and `recipients`, hash key `parent_id`, range key the item's own id;
  a list page's rows' recipients and files together: one BatchGetItem by the ids kept on each Transfer
- a file by its S3 key (the ObjectCreated event): the key is `files/<parent id>/<file id>`, so a GetItem
- a guest link: GSI `by-token` on the SHA-256 of the link token, then a consistent GetItem of the recipient
  whose `token_hash` must still match (a resent link kills the old one at once, whatever the index lags)
- compliance search by sender, recipient, recipient domain or file name: `transfer-search`, one item per
  term written with the transfer, hash key the term, range key "<created_at>#<transfer id>" (dates by range)
- the hourly sweep: sparse GSI `by-due` (due_shard, expires_at) holds only transfers whose files may still
  exist (the attribute goes when they are deleted), Query `expires_at <= now` per shard; sparse GSI
  `by-pending` (pending_shard, created_at) holds only unreleased transfers (abandoned uploads)
- the minute job's release of transfers whose mis-send hold ended: sparse GSI `by-hold` (hold_shard,
  release_not_before), Query `release_not_before` in the last hour per shard
- an employee's bytes in flight and their quota override: `quota-usage` hash key the user id

Upload requests (an employee asks outside people for files) are items of the same `transfers` table with
`kind = "request"`: expiry, the sweep, delete-now, legal hold, search and the compliance pages treat both
kinds alike. Their files and guests are File and Recipient items under the request's id (`parent_kind`
"request"), uploaded, verified and reached through the same services as a transfer's.
"""

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from fxfer import dynamo

PARENT_TRANSFER = "transfer"
PARENT_REQUEST = "request"
# Transfer.kind: files an employee sends, or an upload request (files outside people send to the employee)
KIND_SEND, KIND_REQUEST = "send", "request"

# Transfer.status
PENDING, READY, REVOKED, EXPIRED, DELETED = "pending", "ready", "revoked", "expired", "deleted"
# A request is READY ("open") while its guests may upload, CLOSED after `closes_at` or when closed early; its
# received files stay until `expires_at`.
CLOSED = "closed"
# What the release gate waits for once a pending transfer's files are all verified (Transfer.gate).
GATE_SCAN, GATE_INFECTED, GATE_HOLD, GATE_APPROVAL = "scan", "infected", "hold", "approval"
# File.state
FILE_PENDING, FILE_VERIFIED, FILE_REFUSED, FILE_CANCELLED = "pending", "verified", "refused", "cancelled"
FILE_DELETED = "deleted"
# The sweep indexes spread their items over a few partitions ("live#0" … "live#3").
SWEEP_SHARDS = 4
# File.upload_mode
UPLOAD_POST, UPLOAD_MULTIPART = "post", "multipart"


class TransferByOwner(GlobalSecondaryIndex):
    """A sender's transfers in creation order ("My transfers")."""

    class Meta:
        index_name = "by-owner"
        projection = AllProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class TransferByDay(GlobalSecondaryIndex):
    """Every transfer created on one local day (admin lists, compliance search by date)."""

    class Meta:
        index_name = "by-day"
        projection = AllProjection()

    created_day = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class TransferByMonth(GlobalSecondaryIndex):
    """Every transfer created in one local month, by creation time: a date range is a Query per month (a year is
    13 at most), not one per day."""

    class Meta:
        index_name = "by-month"
        projection = AllProjection()

    created_month = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class TransferDue(GlobalSecondaryIndex):
    """Transfers whose files may still exist, by expiry (sparse: `due_shard` is removed once they are deleted)."""

    class Meta:
        index_name = "by-due"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    expires_at = UTCDateTimeAttribute(range_key=True)


class TransferPendingSince(GlobalSecondaryIndex):
    """Transfers not yet released, by creation (sparse: `pending_shard` is removed on release or deletion)."""

    class Meta:
        index_name = "by-pending"
        projection = KeysOnlyProjection()

    pending_shard = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class TransferHeldUntil(GlobalSecondaryIndex):
    """Transfers whose mails wait for the end of the mis-send hold, by that end (sparse: `hold_shard` is
    removed on release or cancel): the minute job releases those whose hold just ended."""

    class Meta:
        index_name = "by-hold"
        projection = KeysOnlyProjection()

    hold_shard = UnicodeAttribute(hash_key=True)
    release_not_before = UTCDateTimeAttribute(range_key=True)


class Transfer(Model):
    """Files an employee sends to one or more outside recipients."""

    Meta = dynamo.meta("transfers")

    transfer_id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    # Snapshots at creation: the mails and the guest page show who sent it, even if the IdP changes later.
    owner_email = UnicodeAttribute()
    owner_name = UnicodeAttribute(default="")
    # The language of the page the employee made it on: their notices (downloads, lock, bounce, finished) are
    # in it, whoever's request causes them. None on items made before it existed: the site's language.
    owner_language = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(default="")
    message = UnicodeAttribute(default="")
    status = UnicodeAttribute(default=PENDING)
    created_at = UTCDateTimeAttribute()
    created_day = UnicodeAttribute()  # local day, "2026-11-28"
    # Local month, "2026-11" (the `by-month` index). Items made before it existed get it from
    # `manage.py transfer_months` (run once after the upgrade's provision).
    created_month = UnicodeAttribute(null=True)
    expires_at = UTCDateTimeAttribute()
    released_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    download_limit = NumberAttribute()  # downloads of each file by each recipient
    notify_on_download = BooleanAttribute(default=True)
    file_count = NumberAttribute(default=0)
    total_bytes = NumberAttribute(default=0)
    recipient_emails = UnicodeAttribute(default="")  # comma-separated, for lists without a query per row
    # The keys of its children, so a list page reads every row's children with one BatchGetItem, not a Query per
    # row: its recipients' ids (written with it; none are added later) and, on a request, every file id its
    # guests declared (added in the transaction that declares them; a cancelled file's id stays). Absent on items
    # made before they existed: those rows are queried.
    recipient_ids = UnicodeSetAttribute(null=True)
    file_ids = UnicodeSetAttribute(null=True)
    # The metadata is kept for the audit-retention period, then DynamoDB TTL removes it.
    purge_at = TTLAttribute(null=True)
    # The sweep (issue 6): index keys while there is something to delete, the claim of the one deleter, and
    # what was done. A legal hold stops every deletion (and the metadata's TTL) until it is released.
    due_shard = UnicodeAttribute(null=True)
    pending_shard = UnicodeAttribute(null=True)
    deletion_claimed_at = UTCDateTimeAttribute(null=True)
    deleted_at = UTCDateTimeAttribute(null=True)  # files deleted (by expiry or at once); links dead
    deleted_by = UnicodeAttribute(null=True)  # "sweep", "sender", "compliance", "orphan-sweep"
    held = BooleanAttribute(default=False)
    hold_reason = UnicodeAttribute(null=True)
    held_by = UnicodeAttribute(null=True)
    held_at = UTCDateTimeAttribute(null=True)
    # Upload requests (kind "request"): when uploads stop, how long received files are kept after that, and
    # the limits for each guest. A transfer that allows replies names its reply request, which names it back.
    kind = UnicodeAttribute(default=KIND_SEND)
    closes_at = UTCDateTimeAttribute(null=True)
    keep_days = NumberAttribute(null=True)
    max_files = NumberAttribute(null=True)
    max_file_bytes = NumberAttribute(null=True)
    max_total_bytes = NumberAttribute(null=True)
    allowed_extensions = UnicodeAttribute(null=True)  # comma-separated, casefolded; empty: any allowed type
    reply_request_id = UnicodeAttribute(null=True)
    reply_to = UnicodeAttribute(null=True)
    # The bytes of this transfer charged to its sender's quota (QuotaUsage), from creation until its files are
    # deleted; a cancelled file gives its bytes back. Absent: nothing charged (an upload request, or a transfer
    # made before quotas), or the charge was refunded with the deletion.
    quota_bytes = NumberAttribute(null=True)
    # Supervisor approval (transfers.services.approvals), decided at creation so a later change of the policy
    # never releases it silently: `approval_state` "not_required", "required" (waiting), "approved", "rejected",
    # "timed_out" (absent: made before approvals, none needed); why, who may decide (addresses, or an IdP
    # group), by when, and who decided with their comment.
    approval_state = UnicodeAttribute(null=True)
    approval_reasons = UnicodeAttribute(null=True)  # comma-separated: "always", "external", "size", "department"
    approval_approvers = UnicodeSetAttribute(null=True)  # casefolded addresses
    approval_group = UnicodeAttribute(null=True)
    approval_fallback = UnicodeAttribute(null=True)  # "no_manager", "self_manager": the group decides instead
    approval_due_at = UTCDateTimeAttribute(null=True)
    approval_on_timeout = UnicodeAttribute(null=True)  # "reject" or "escalate"
    approval_escalated_at = UTCDateTimeAttribute(null=True)
    approval_decided_by = UnicodeAttribute(null=True)  # the decider's address ("system" on a timeout)
    approval_decided_name = UnicodeAttribute(null=True)
    approval_decided_at = UTCDateTimeAttribute(null=True)
    approval_comment = UnicodeAttribute(null=True)
    # When the approvers were asked (their mail, the timeout's start): once every file is verified and clean.
    approval_requested_at = UTCDateTimeAttribute(null=True)
    # What the release gate waits for once every file is verified (transfers.services.gate GATE_*), kept by
    # transfer_release's blocked path and the approval request so list pages say it without reading the files.
    gate = UnicodeAttribute(null=True)  # GATE_SCAN, GATE_INFECTED, GATE_HOLD, GATE_APPROVAL
    # Mis-send prevention (transfers.services.missend): no recipient is mailed before `release_not_before`
    # (Send + the hold); `hold_shard` keeps it in the sparse by-hold index until it is released or cancelled.
    # `send_cancelled_at`: the sender cancelled during the hold; no mail ever left.
    release_not_before = UTCDateTimeAttribute(null=True)
    hold_shard = UnicodeAttribute(null=True)
    send_cancelled_at = UTCDateTimeAttribute(null=True)

    by_owner = TransferByOwner()
    by_day = TransferByDay()
    by_month = TransferByMonth()
    by_due = TransferDue()
    by_pending = TransferPendingSince()
    by_hold = TransferHeldUntil()


class RecipientByToken(GlobalSecondaryIndex):
    """Link token hash → recipient. Eventually consistent: callers re-read the recipient and compare."""

    class Meta:
        index_name = "by-token"
        projection = KeysOnlyProjection()

    token_hash = UnicodeAttribute(hash_key=True)


class Recipient(Model):
    """One outside person's access to one transfer (or upload request): their link, codes, downloads, lock."""

    Meta = dynamo.meta("recipients")

    parent_id = UnicodeAttribute(hash_key=True)
    recipient_id = UnicodeAttribute(range_key=True)
    parent_kind = UnicodeAttribute(default=PARENT_TRANSFER)
    email = UnicodeAttribute()
    # The language of this person's mails ("en", "ja") as the sender chose it; None on items made before it
    # existed: fxfer.i18n.mail_language then applies the default rule (.jp addresses in Japanese).
    language = UnicodeAttribute(null=True)
    # SHA-256 (hex) of the 256-bit link token; the token itself is only ever in the recipient's mail.
    token_hash = UnicodeAttribute(null=True)
    link_sent_at = UTCDateTimeAttribute(null=True)
    downloads_used = NumberAttribute(default=0)  # all files together, for display
    file_downloads = MapAttribute(default=dict)  # file id → downloads of that file (the limit applies to each)
    last_download_at = UTCDateTimeAttribute(null=True)
    failed_code_attempts = NumberAttribute(default=0)
    locked = BooleanAttribute(default=False)
    locked_at = UTCDateTimeAttribute(null=True)
    # A request's guest: what they have declared so far (their limits are checked against these with
    # conditional writes), and their "finish" with its note.
    files_reserved = NumberAttribute(default=0)
    bytes_reserved = NumberAttribute(default=0)
    finished_at = UTCDateTimeAttribute(null=True)
    note = UnicodeAttribute(null=True)
    purge_at = TTLAttribute(null=True)

    by_token = RecipientByToken()


class File(Model):
    """One file of a transfer. Its S3 key is generated here, never taken from the file's name."""

    Meta = dynamo.meta("files")

    parent_id = UnicodeAttribute(hash_key=True)
    file_id = UnicodeAttribute(range_key=True)
    parent_kind = UnicodeAttribute(default=PARENT_TRANSFER)
    s3_key = UnicodeAttribute()  # "files/<parent id>/<file id>"
    name = UnicodeAttribute()  # as the sender's browser gave it; shown and used in Content-Disposition only
    content_type = UnicodeAttribute(default="application/octet-stream")  # declared; never served
    declared_size = NumberAttribute()
    # base64. The uploader's browser computed it (the sender's word): declared with a file sent in one POST (S3
    # checks it against the body); sent with the completion of a multipart upload (nobody but the browser
    # read those bytes whole: S3 checks their CRC-64/NVME instead).
    declared_sha256 = UnicodeAttribute(null=True)
    state = UnicodeAttribute(default=FILE_PENDING)
    refused_reason = UnicodeAttribute(null=True)
    upload_mode = UnicodeAttribute(null=True)
    multipart_upload_id = UnicodeAttribute(null=True)
    part_size = NumberAttribute(null=True)
    part_count = NumberAttribute(null=True)
    expected_etag = UnicodeAttribute(null=True)  # the composite ETag CompleteMultipartUpload must produce
    # "CRC64NVME" when the multipart upload was created with S3's full-object checksum (every part carries
    # its CRC; completion carries the whole file's, `declared_crc64nvme`, base64, and S3 refuses a mismatch).
    multipart_checksum = UnicodeAttribute(null=True)
    declared_crc64nvme = UnicodeAttribute(null=True)
    verified_size = NumberAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    checksum_sha256 = UnicodeAttribute(null=True)  # base64, as S3 reports it
    checksum_crc64nvme = UnicodeAttribute(null=True)  # base64: S3's full-object CRC-64/NVME (multipart files)
    version_id = UnicodeAttribute(null=True)  # the verified version; downloads are pinned to it
    # The deletion claim: the versions about to be deleted (JSON: versions, markers, size, etag, at), recorded
    # before S3 is asked, so whichever run comes next finishes the same receipt (transfers.services.deletion).
    deletion_claim = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    verified_at = UTCDateTimeAttribute(null=True)
    deleted_at = UTCDateTimeAttribute(null=True)
    # A request's file: the guest who uploaded it (only they see it; nobody downloads it but the employee).
    uploader_id = UnicodeAttribute(null=True)
    uploader_email = UnicodeAttribute(null=True)
    # The malware scan (issue 16, transfers.services.scanning). `scan_required`: set with the verification while
    # a scanner is on, so the file is released and downloaded only once it is clean. The verdict on the verified
    # version (GuardDuty's words: NO_THREATS_FOUND, THREATS_FOUND, UNSUPPORTED, ACCESS_DENIED, FAILED), when, the
    # threat's name, which source gave it; and compliance's release of a blocked file, naming the verdict it
    # overrode ("none": no verdict yet), so a later, different verdict blocks the file again.
    scan_required = BooleanAttribute(null=True)
    scan_status = UnicodeAttribute(null=True)
    scan_at = UTCDateTimeAttribute(null=True)
    scan_detail = UnicodeAttribute(null=True)
    scan_source = UnicodeAttribute(null=True)
    scan_overridden_status = UnicodeAttribute(null=True)
    scan_overridden_by = UnicodeAttribute(null=True)
    scan_overridden_at = UTCDateTimeAttribute(null=True)
    scan_override_reason = UnicodeAttribute(null=True)
    purge_at = TTLAttribute(null=True)


class OneTimeCode(Model):
    """The code a recipient asked for (one live code each; a new one replaces it). Only an HMAC is stored."""

    Meta = dynamo.meta("one-time-codes")

    recipient_ref = UnicodeAttribute(hash_key=True)  # "<parent id>#<recipient id>"
    code_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()  # every read checks it: TTL deletes late
    purge_at = TTLAttribute()


class GuestGrant(Model):
    """What a correct code grants: a short guest session for one recipient of one transfer.

    The view keeps the grant secret in the (server-side) session; only its hash is stored. It names the link
    token it was granted through, so a resent link, a lock or a revoke ends it at once.
    """

    Meta = dynamo.meta("guest-grants")

    grant_hash = UnicodeAttribute(hash_key=True)
    parent_id = UnicodeAttribute()
    recipient_id = UnicodeAttribute()
    token_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    purge_at = TTLAttribute()


class QuotaUsage(Model):
    """One employee's bytes in flight: declared in their transfers whose files may still be in S3. Raised with
    a conditional ADD in the transaction that creates a transfer (so two creates at once cannot both pass),
    lowered in the transactions that record a file's cancellation or a transfer's deletion
    (transfers.services.quota). `quota_bytes` is compliance's override; absent: FXFER_USER_QUOTA_BYTES."""

    Meta = dynamo.meta("quota-usage")

    user_id = UnicodeAttribute(hash_key=True)
    in_flight = NumberAttribute(default=0)
    quota_bytes = NumberAttribute(null=True)
    # Raised by each change of the override: an officer's form names the version it was shown, so two officers
    # (or a resubmitted form) never undo each other silently.
    quota_version = NumberAttribute(default=0)
    quota_set_by = UnicodeAttribute(null=True)
    quota_set_at = UTCDateTimeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)


class ApprovalDelegation(Model):
    """An approver's delegate for a period (an absence): while it runs, the approval requests that name the
    approver also go to the delegate, who may decide them. One per approver; a new one replaces it."""

    Meta = dynamo.meta("approval-delegations")

    approver_key = UnicodeAttribute(hash_key=True)  # the approver's address, casefolded
    approver_id = UnicodeAttribute()
    delegate_email = UnicodeAttribute()  # casefolded
    starts_at = UTCDateTimeAttribute()
    ends_at = UTCDateTimeAttribute()  # every read checks it: TTL deletes late
    set_at = UTCDateTimeAttribute()
    purge_at = TTLAttribute(null=True)


class RateLimit(Model):
    """A fixed-window counter ("link-ip:<ip>#<window start>"), raised with a conditional ADD."""

    Meta = dynamo.meta("rate-limits")

    counter = UnicodeAttribute(hash_key=True)
    count = NumberAttribute(default=0)
    purge_at = TTLAttribute(null=True)


class TransferSearchTerm(Model):
    """One search term of one transfer, written when the transfer is. Terms: "sender:<address>",
    "recipient:<address>", "domain:<recipient domain>", "file:<name, casefolded>"."""

    Meta = dynamo.meta("transfer-search")

    term = UnicodeAttribute(hash_key=True)
    sort_key = UnicodeAttribute(range_key=True)  # "<created_at ISO>#<transfer id>": date ranges by key
    transfer_id = UnicodeAttribute()
    parent_kind = UnicodeAttribute(default=PARENT_TRANSFER)
    created_at = UTCDateTimeAttribute()
    purge_at = TTLAttribute(null=True)


class SweepCursor(Model):
    """Where the orphan sweep's listing of the bucket continues next hour (one item per listing)."""

    Meta = dynamo.meta("sweep-cursors")

    name = UnicodeAttribute(hash_key=True)  # "orphan-objects", "orphan-uploads"
    key_marker = UnicodeAttribute(null=True)  # the last key of the page taken; the next page starts after it
    upload_id_marker = UnicodeAttribute(null=True)  # with key_marker, where a multipart uploads listing goes on
    pass_number = NumberAttribute(default=0)  # pages taken so far; a conditional write lets one sweep take each
    updated_at = UTCDateTimeAttribute(null=True)
    # The lease of the one run working on the page, and that run's deletion claims (key → parent, file and
    # versions, recorded before S3 is asked): a run killed between S3 and DynamoDB leaves them for the next.
    lease_op = UnicodeAttribute(null=True)
    lease_until = UTCDateTimeAttribute(null=True)
    claims = UnicodeAttribute(null=True)  # JSON


class OutboxByParent(GlobalSecondaryIndex):
    """A transfer's (or request's) mails, for its page: mailed, retrying, failed, bounced."""

    class Meta:
        index_name = "by-parent"
        projection = AllProjection()

    parent_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class OutboxUnsent(GlobalSecondaryIndex):
    """Mails still to send, by when to try next (sparse: `unsent` goes once a mail is sent or given up)."""

    class Meta:
        index_name = "by-unsent"
        projection = KeysOnlyProjection()

    unsent = UnicodeAttribute(hash_key=True)  # "pending"
    next_attempt_at = UTCDateTimeAttribute(range_key=True)


class OutboxByMessage(GlobalSecondaryIndex):
    """SES message id → the mail: a bounce or complaint notification names the message."""

    class Meta:
        index_name = "by-message"
        projection = KeysOnlyProjection()

    ses_message_id = UnicodeAttribute(hash_key=True)


# OutboxMail.status
MAIL_PENDING, MAIL_SENT, MAIL_FAILED, MAIL_BOUNCED, MAIL_COMPLAINED = (
    "pending",
    "sent",
    "failed",
    "bounced",
    "complained",
)


class OutboxMail(Model):
    """One mail a change caused, committed in the same transaction as that change, keyed by its cause. Sent
    right after the commit; the retry job sends what could not be sent then. A secret (a link token, a code)
    is never stored: the body holds a placeholder, and the secret is derived from `nonce` with the
    site's secret key when the mail is sent (the item alone never reveals it)."""

    Meta = dynamo.meta("outbox")

    mail_key = UnicodeAttribute(hash_key=True)  # the cause: "link:<transfer id>:<recipient id>:<op>"
    kind = UnicodeAttribute()  # "link", "request_link", "code", "download_notice", ...
    parent_id = UnicodeAttribute(null=True)  # the transfer or request it is about
    recipient_id = UnicodeAttribute(null=True)  # the guest it goes to, when it goes to one
    audit_subject = UnicodeAttribute(default="system")
    to = UnicodeAttribute()
    subject = UnicodeAttribute()
    body = UnicodeAttribute()
    reply_to = UnicodeAttribute(null=True)
    derive = UnicodeAttribute(null=True)  # "link" or "code"
    nonce = UnicodeAttribute(null=True)
    # A resent link: the new token's hash replaces the recipient's only once SES has accepted the new mail.
    activates_token_hash = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default=MAIL_PENDING)
    attempts = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    next_attempt_at = UTCDateTimeAttribute(null=True)
    claimed_until = UTCDateTimeAttribute(null=True)  # one sender at a time
    sent_at = UTCDateTimeAttribute(null=True)
    ses_message_id = UnicodeAttribute(null=True)
    bounced_at = UTCDateTimeAttribute(null=True)
    bounce_reason = UnicodeAttribute(null=True)
    unsent = UnicodeAttribute(null=True)
    purge_at = TTLAttribute(null=True)

    by_parent = OutboxByParent()
    by_unsent = OutboxUnsent()
    by_message = OutboxByMessage()
