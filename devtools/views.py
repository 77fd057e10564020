"""Local development only: the mailbox of the SES stand-in, so a person can follow a guest's link."""

import json
import urllib.request
from email import message_from_bytes, policy

from django.conf import settings
from django.shortcuts import render


def _sent_messages() -> list[dict]:
    """Raw messages moto's SES received (django-ses sends raw MIME), newest first."""
    with urllib.request.urlopen(f"{settings.FXFER_SES_ENDPOINT}/moto-api/data.json", timeout=5) as response:
        data = json.load(response)
    raw = data.get("ses", {}).get("RawMessage", [])
    messages = []
    for item in raw:
        # Parse bytes, not str: the str parser turns 8-bit UTF-8 bodies (Japanese text) into \\u escapes.
        parsed = message_from_bytes(item["raw_data"].encode("utf-8", "surrogateescape"), policy=policy.default)
        body = parsed.get_body(preferencelist=("plain", "html"))
        messages.append(
            {
                "id": item["id"],
                "source": item["source"],
                "to": ", ".join(dict.fromkeys(item["destinations"])),
                "subject": parsed["subject"],
                "date": parsed["date"],
                "body": body.get_content() if body else "",
            }
        )
    return list(reversed(messages))


def mailbox(request):
    return render(request, "devtools/mailbox.html", {"messages_sent": _sent_messages()})
