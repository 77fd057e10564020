"""Local development only: the mailbox of the SES stand-in, so a person can follow a guest's link, and make a
mail bounce (or draw a complaint) the way SES would report it, to see what the sender sees then."""

import json
import urllib.request
from datetime import UTC
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from transfers.notifications import (
    SOFT_BOUNCE,
    on_ses_notification,
    ses_bounce_message,
    ses_complaint_message,
    sns_event,
)

# What each button simulates, and what the page says about each outcome of the handler.
SIMULATIONS = ("bounce", SOFT_BOUNCE, "complaint")
OUTCOMES = {
    "bounced": "The mail is marked bounced and the sender was told (for a guest's link mail).",
    "soft_bounce": "Recorded as a soft bounce: the mail stays sent; the sender was told it may not have arrived.",
    "complained": "The mail is marked as a complaint.",
    "already": "Nothing new: this mail's bounce or complaint was recorded before.",
    "unknown_message": "Not a mail fxfer's outbox sent (or one sent before the outbox kept it): nothing to record.",
    "ignored": "The handler ignored it.",
    "failed": "Not recorded: the handler raised (in AWS, Lambda would retry it). Is this an outbox mail?",
}


def _raw_messages() -> list[dict]:
    """What the SES stand-in received (django-ses sends raw MIME): its id, source, destinations, raw data."""
    if settings.FXFER_SES_ENDPOINT:
        with urllib.request.urlopen(f"{settings.FXFER_SES_ENDPOINT}/moto-api/data.json", timeout=5) as response:
            data = json.load(response)
        return data.get("ses", {}).get("RawMessage", [])
    # The stand-in runs in this process (moto in the fast test tier): the same records, read directly.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME]
    return [
        {"id": m.id, "source": m.source, "destinations": list(m.destinations), "raw_data": m.raw_data}
        for m in backend.sent_messages
        if hasattr(m, "raw_data")
    ]


def _sent_messages() -> list[dict]:
    """Raw messages the SES stand-in received, parsed, newest first."""
    messages = []
    for item in _raw_messages():
        # Parse bytes, not str: the str parser turns 8-bit UTF-8 bodies (Japanese text) into \\u escapes.
        parsed = message_from_bytes(item["raw_data"].encode("utf-8", "surrogateescape"), policy=policy.default)
        body = parsed.get_body(preferencelist=("plain", "html"))
        destinations = list(dict.fromkeys(item["destinations"]))
        messages.append(
            {
                "id": item["id"],
                "source": item["source"],
                "to": ", ".join(destinations),
                "destinations": destinations,
                "subject": parsed["subject"],
                "date": parsed["date"],
                "body": body.get_content() if body else "",
            }
        )
    return list(reversed(messages))


def mailbox(request):
    simulated = request.GET.get("outcome")
    context = {
        "messages_sent": _sent_messages(),
        "simulated": {"to": request.GET.get("to", ""), "kind": request.GET.get("kind", ""), "text": OUTCOMES[simulated]}
        if simulated in OUTCOMES
        else None,
    }
    return render(request, "devtools/mailbox.html", context)


@require_POST
def mailbox_simulate(request, message_id: str, kind: str):
    """ "Simulate bounce" (or soft bounce, or complaint): the SNS-wrapped SES notification for this mail, handed to
    the same handler the SNS topic invokes in AWS."""
    message = next((m for m in _sent_messages() if m["id"] == message_id), None)
    if message is None or kind not in SIMULATIONS:
        raise Http404
    outcome = _simulate(message, kind)
    query = urlencode({"outcome": outcome, "to": message["to"], "kind": kind})
    return redirect(f"{reverse('devtools:mailbox')}?{query}")


def _simulate(message: dict, kind: str) -> str:
    to = message["destinations"][0]
    sent_at = parsedate_to_datetime(message["date"]) if message["date"] else None
    if sent_at is not None and sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)  # "-0000": a UTC time (RFC 5322), not the server's local time
    if kind == "complaint":
        notification = ses_complaint_message(message_id=message["id"], to=to, sent_at=sent_at)
    elif kind == SOFT_BOUNCE:
        notification = ses_bounce_message(
            message_id=message["id"],
            to=to,
            bounce_type="Transient",
            bounce_subtype="MailboxFull",
            diagnostic="smtp; 452 4.2.2 mailbox full",
            sent_at=sent_at,
        )
    else:
        notification = ses_bounce_message(message_id=message["id"], to=to, bounce_subtype="NoEmail", sent_at=sent_at)
    try:
        result = on_ses_notification(sns_event(notification), None)
    except Exception:
        return "failed"
    (record,) = result["records"]
    return record["outcome"]
