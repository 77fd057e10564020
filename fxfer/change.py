"""One change, one commit (STYLE shape 7): a service collects every item its change writes, the audit events
that record it and the mails it causes (outbox items), and commits them as one DynamoDB TransactWriteItems.

    change = Change(op=f"release:{transfer_id}", now=now)
    change.update(transfer, actions=[...], condition=Transfer.status == PENDING)
    change.audit("transfer.released", actor="system", subject=f"transfer:{transfer_id}")
    change.mail(key=f"link:{transfer_id}:{recipient_id}", to=..., subject=..., body=..., parent_id=transfer_id)
    change.commit()        # one transaction; then the outbox sends (a job retries what it could not)

Why one transaction: AWS fails between any two calls, and a process can be killed between two lines. A state
change whose audit event or mail is a separate write can be left without it, and nobody can explain that state.

Idempotency, twice over:
- The transaction carries a ClientRequestToken derived from `op`: botocore's retry of a call whose answer was
  lost (the write happened) is then a no-op that succeeds, for ten minutes.
- Audit event ids and outbox keys derive from `op` too, and are put with "does not exist": a later retry of the
  same operation (a job healing it, a second S3 event) fails its conditions instead of writing twice, and
  `commit()` reports the earlier attempt as committed (`Committed.repeated`), so the caller goes on with the rest.

A transaction holds at most 100 items. A service whose change is larger writes the items nothing can reach yet
(a new transfer's files and recipients) first, then commits the parent, its audit event and its outbox items.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from fxfer import dynamo

logger = logging.getLogger(__name__)

MAX_ITEMS = 100
CONDITION_FAILED = "ConditionalCheckFailed"
SAME_OP = "IdempotentParameterMismatch"


class ChangeTooLarge(Exception):
    """More than MAX_ITEMS items in one change: a programming error, never retried."""


@dataclass(frozen=True)
class Refusal:
    """Why one item of a cancelled transaction failed: its code and, for a failed condition, the item as it was."""

    index: int
    code: str
    old: dict | None  # raw DynamoDB attributes (ReturnValuesOnConditionCheckFailure=ALL_OLD)


class ChangeRefused(Exception):
    """The transaction was cancelled: some item's condition failed (or a conflicting transaction ran)."""

    def __init__(self, refusals: list[Refusal], labels: list[str]) -> None:
        super().__init__(", ".join(f"{labels[r.index]}: {r.code}" for r in refusals) or "cancelled")
        self.refusals = refusals
        self.labels = labels

    def failed(self, label: str) -> Refusal | None:
        """The refusal of the item added with `label`, if its condition failed."""
        for refusal in self.refusals:
            if self.labels[refusal.index] == label and refusal.code == CONDITION_FAILED:
                return refusal
        return None

    def conflict(self) -> bool:
        """Another transaction held one of the items: retrying the same change may succeed."""
        return any(r.code == "TransactionConflict" for r in self.refusals)

    def own_effect(self) -> bool:
        """An earlier attempt of this same operation committed: one of its audit events is already there (their
        ids derive from the operation and commit with it or not at all), or AWS remembers its token with other
        values. (An outbox key that exists proves nothing: the caller chooses it, and another operation may.)"""
        return any(r.code == SAME_OP for r in self.refusals) or any(
            r.code == CONDITION_FAILED and self.labels[r.index].startswith(f"{_OWN}audit:") for r in self.refusals
        )


_OWN = "own:"
_SENT_ORDER = {"check": 0, "delete": 1, "save": 2, "update": 3}


@dataclass
class Committed:
    op: str
    events: list[str] = field(default_factory=list)  # audit event ids
    mails: list[str] = field(default_factory=list)  # outbox keys
    sent: dict[str, bool] = field(default_factory=dict)  # outbox key → accepted by SES right after the commit
    outcomes: dict = field(default_factory=dict)  # outbox key → transfers.outbox.MailSent (status, error)
    repeated: bool = False  # an earlier attempt of this operation had committed it (or its answer was lost)


class Change:
    """Everything one operation writes, committed at once. `op` names the operation (stable across retries of
    it: "release:<transfer id>"); `now` is the time its events carry."""

    def __init__(self, *, op: str, now: datetime | None = None) -> None:
        self.op = op
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self._ops: list[tuple[str, str, Model, dict]] = []  # (label, kind, item, kwargs)
        self._events: list = []
        self._mails: list = []

    # --- items ---------------------------------------------------------------------------------------------
    def put(self, item: Model, *, condition=None, label: str | None = None) -> None:
        self._add(label or _label(item), "save", item, condition=condition, return_values="ALL_OLD")

    def update(self, item: Model, *, actions: list, condition=None, label: str | None = None) -> None:
        self._add(label or _label(item), "update", item, actions=actions, condition=condition, return_values="ALL_OLD")

    def delete(self, item: Model, *, condition=None, label: str | None = None) -> None:
        self._add(label or _label(item), "delete", item, condition=condition)

    def check(self, item: Model, *, condition, label: str | None = None) -> None:
        self._add(label or _label(item), "check", item, condition=condition)

    # --- what the change records and causes --------------------------------------------------------------
    def audit(
        self,
        action: str,
        *,
        actor: str,
        subject: str,
        outcome: str = "ok",
        ip: str | None = None,
        user_agent: str | None = None,
        **details,
    ) -> str:
        """Add one audit event (unchained; the chainer links it). Returns its id."""
        from reports.models import AuditEvent
        from reports.services import audit_event, event_id_for

        event = audit_event(
            action=action,
            actor=actor,
            subject=subject,
            outcome=outcome,
            ip=ip,
            user_agent=user_agent,
            details={k: v for k, v in details.items() if v is not None},
            now=self.now,
            event_id=event_id_for(self.op, len(self._events)),
        )
        self._events.append(event)
        self.put(event, condition=AuditEvent.event_id.does_not_exist(), label=f"{_OWN}audit:{event.event_id}")
        return event.event_id

    def mail(self, **fields) -> str:
        """Add one outbox mail (see transfers.outbox.outbox_item for the fields). Returns its key."""
        from transfers.models import OutboxMail
        from transfers.outbox import outbox_item

        item = outbox_item(now=self.now, **fields)
        self._mails.append(item)
        self.put(item, condition=OutboxMail.mail_key.does_not_exist(), label=f"{_OWN}mail:{item.mail_key}")
        return item.mail_key

    @property
    def size(self) -> int:
        return len(self._ops)

    def __bool__(self) -> bool:
        return bool(self._ops)

    # --- commit ----------------------------------------------------------------------------------------------
    def commit(self, *, send_mails: bool = True) -> Committed:
        """One TransactWriteItems; then each outbox mail is sent once (failures stay in the outbox for the
        retry job). An operation that had committed before (its own events and mails are there, its token is
        remembered with other values, or its answer was lost for good and its first event is found) counts as
        committed: `Committed.repeated`, and its mails are sent if still pending. Raises ChangeRefused when
        another condition failed, and the AWS error when nothing shows that it committed."""
        if len(self._ops) > MAX_ITEMS:
            raise ChangeTooLarge(f"{self.op}: {len(self._ops)} items in one transaction (at most {MAX_ITEMS})")
        # PynamoDB sends condition checks, then deletes, puts and updates: the cancellation reasons come in that
        # order, so the labels must too.
        labels = [label for label, *_ in sorted(self._ops, key=lambda op: _SENT_ORDER[op[1]])]
        if self._ops:
            try:
                with TransactWrite(connection=dynamo.connection(), client_request_token=self.token) as tx:
                    for _, kind, item, kwargs in self._ops:
                        if kind == "save":
                            tx.save(item, **kwargs)
                        elif kind == "update":
                            tx.update(item, **kwargs)
                        elif kind == "delete":
                            tx.delete(item, **kwargs)
                        else:
                            tx.condition_check(type(item), _hash_key(item), _range_key(item), **kwargs)
            except TransactWriteError as exc:
                if getattr(exc, "cause_response_code", "") == "IdempotentParameterMismatchException":
                    # The same operation committed within the last ten minutes with other values (a concurrent
                    # caller, a retry at another time): its effect is there.
                    return self._done(repeated=True, send_mails=send_mails)
                reasons = exc.cancellation_reasons or []
                refusals = [
                    Refusal(index=i, code=reason.code, old=reason.raw_item)
                    for i, reason in enumerate(reasons)
                    if reason is not None
                ]
                if refusals:
                    refused = ChangeRefused(refusals, labels)
                    if refused.own_effect():
                        return self._done(repeated=True, send_mails=send_mails)
                    raise refused from None
                if not self._committed_before(exc):
                    raise
                return self._done(repeated=True, send_mails=send_mails)
            except Exception as exc:
                if not self._committed_before(exc):
                    raise
                return self._done(repeated=True, send_mails=send_mails)
        return self._done(repeated=False, send_mails=send_mails)

    def _committed_before(self, exc: BaseException) -> bool:
        """After a failure that left no answer (botocore gave up on lost answers or timeouts), whether the
        transaction took effect anyway: its first audit event commits with it or not at all."""
        from fxfer.aws import transient
        from reports.models import AuditEvent

        if not self._events or not transient(exc):
            return False
        try:
            AuditEvent.get(self._events[0].event_id, consistent_read=True)
        except AuditEvent.DoesNotExist:
            return False
        except Exception:
            return False  # still no answer: report the original failure
        logger.warning("change.recognised", extra={"op_kind": self.op.split(":", 1)[0]})
        return True

    def _done(self, *, repeated: bool, send_mails: bool) -> Committed:
        from fxfer.observability import count_audit_event
        from reports.services import log_event

        for event in self._events:
            log_event(event)
            if not repeated:  # counted once, by the attempt that committed it
                count_audit_event(event.action, event.outcome, event.details, hits=int(event.count or 1))
        committed = Committed(
            op=self.op,
            events=[e.event_id for e in self._events],
            mails=[m.mail_key for m in self._mails],
            repeated=repeated,
        )
        if send_mails:
            committed.outcomes = send_committed(committed.mails, now=self.now)
            committed.sent = {key: outcome.sent for key, outcome in committed.outcomes.items()}
        return committed

    @property
    def events(self) -> list[str]:
        """The ids of the audit events this change writes."""
        return [e.event_id for e in self._events]

    @property
    def mail_keys(self) -> list[str]:
        """The outbox keys of the mails this change writes."""
        return [m.mail_key for m in self._mails]

    @property
    def mail_items(self) -> list:
        """The outbox mails (OutboxMail items) this change writes."""
        return list(self._mails)

    @property
    def token(self) -> str:
        """The transaction's ClientRequestToken (at most 36 characters), derived from the operation."""
        return hashlib.sha256(self.op.encode()).hexdigest()[:36]

    def _add(self, label: str, kind: str, item: Model, **kwargs) -> None:
        self._ops.append((label, kind, item, {k: v for k, v in kwargs.items() if v is not None}))


def send_committed(mail_keys: list[str], *, now: datetime | None = None) -> dict:
    """Send committed outbox mails now, each once (the retry job sends what fails here): key → MailSent."""
    from transfers.models import MAIL_PENDING
    from transfers.outbox import MailSent, outbox_send

    outcomes = {}
    for key in mail_keys:
        try:
            outcomes[key] = outbox_send(mail_key=key, now=now)
        except Exception as exc:
            # Committed, so not lost: the retry job sends it. The caller tells the user it is not sent yet.
            logger.exception("outbox.send.error", extra={"mail_key_kind": key.split(":", 1)[0]})
            outcomes[key] = MailSent(mail_key=key, sent=False, status=MAIL_PENDING, error=type(exc).__name__)
    return outcomes


def _label(item: Model) -> str:
    hash_key = _hash_key(item)
    range_key = _range_key(item)
    return f"{item.Meta.table_name}:{hash_key}" + (f":{range_key}" if range_key is not None else "")


def _hash_key(item: Model):
    return getattr(item, item._hash_keyname)


def _range_key(item: Model):
    name = item._range_keyname
    return getattr(item, name) if name else None


def old_value(refusal: Refusal | None, attribute: str):
    """One attribute of the item as it was when its condition failed (S, N or BOOL), or None."""
    if refusal is None or not refusal.old or attribute not in refusal.old:
        return None
    value = refusal.old[attribute]
    if "S" in value:
        return value["S"]
    if "N" in value:
        return float(value["N"]) if "." in value["N"] else int(value["N"])
    if "BOOL" in value:
        return value["BOOL"]
    return None
