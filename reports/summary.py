"""The daily summary mail to compliance staff: the day's figures and what looks unusual.

Anomalies, each against the 30 days before the day (their stored DailyStats, one BatchGet):
- failed one-time codes or failed sign-ins above FXFER_COMPLIANCE_SPIKE_FACTOR times their median (and at least
  FXFER_COMPLIANCE_SPIKE_MINIMUM);
- transfers of FXFER_COMPLIANCE_LARGE_TRANSFER_BYTES or more;
- recipient domains that none of the 30 days before had.
"""

import logging
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from reports.models import DailyStats
from reports.services import SCOPE_ALL

logger = logging.getLogger(__name__)

SUMMARY_SCOPE = "mail:summary"  # a DailyStats item marking the day's summary as sent
LOOKBACK_DAYS = 30


@dataclass(frozen=True)
class Anomaly:
    kind: str  # "failed_codes", "failed_signins", "large_transfer", "new_domain"
    text: str


@dataclass(frozen=True)
class SummarySent:
    day: date
    sent: bool  # False: no recipients configured, or it was sent before
    recipients: tuple[str, ...]
    anomalies: tuple[Anomaly, ...]


def day_anomalies(*, day: date, figures: dict) -> tuple[Anomaly, ...]:
    """What is unusual about the day's figures compared with the 30 days before it."""
    history = [
        item.figures or {}
        for item in DailyStats.batch_get(
            [((day - timedelta(days=n)).isoformat(), SCOPE_ALL) for n in range(1, LOOKBACK_DAYS + 1)]
        )
        if item.status == "ok"
    ]
    found = []
    spikes = (
        ("failed_codes", _("%(count)d failed one-time codes (30-day median %(median)s)")),
        ("failed_signins", _("%(count)d failed sign-ins (30-day median %(median)s)")),
    )
    for name, text in spikes:
        count = int(figures.get(name, 0))
        median = statistics.median([int(h.get(name, 0)) for h in history]) if history else 0
        threshold = max(settings.FXFER_COMPLIANCE_SPIKE_MINIMUM, settings.FXFER_COMPLIANCE_SPIKE_FACTOR * median)
        if count >= threshold and count > median:
            found.append(Anomaly(name, text % {"count": count, "median": f"{median:g}"}))
    for transfer in figures.get("large_transfers", ()):
        found.append(
            Anomaly(
                "large_transfer",
                _("Large transfer %(id)s: %(size)s")
                % {"id": transfer["transfer"].partition(":")[2], "size": _size(transfer["bytes"])},
            )
        )
    seen = set().union(*(set(h.get("domains", ())) for h in history)) if history else set()
    for domain in figures.get("domains", ()):
        if domain not in seen:
            found.append(Anomaly("new_domain", _("New external domain: %(domain)s") % {"domain": domain}))
    return tuple(found)


def daily_summary_send(*, day: date, figures: dict, now: datetime | None = None) -> SummarySent:
    """Mail the day's figures and anomalies to FXFER_COMPLIANCE_SUMMARY_TO, once per day: the day's claim and
    its outbox mail commit together (op "summary:<day>"), so a retried or repeated job neither sends
    it twice nor loses it; what SES does not take now, the outbox retries. `sent`: every mail went now."""
    from fxfer.change import Change, ChangeRefused

    recipients = tuple(settings.FXFER_COMPLIANCE_SUMMARY_TO)
    anomalies = day_anomalies(day=day, figures=figures)
    if not recipients:
        return SummarySent(day=day, sent=False, recipients=(), anomalies=anomalies)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    context = {
        "day": day,
        "figures": figures,
        "anomalies": anomalies,
        "rows": _figure_rows(figures),
        "report_url": f"{settings.FXFER_BASE_URL}/admin/reports/daily/?day={day.isoformat()}",
    }
    subject = _("fxfer daily summary %(day)s") % {"day": day.isoformat()}
    if anomalies:
        subject += ": " + _("%(count)d to look at") % {"count": len(anomalies)}
    body = render_to_string("reports/summary_mail.txt", context)
    change = Change(op=f"summary:{day.isoformat()}", now=now)
    change.put(
        DailyStats(
            day=day.isoformat(),
            scope=SUMMARY_SCOPE,
            status="sent",
            figures={"to": list(recipients)},
            computed_at=now,
        ),
        condition=DailyStats.scope.does_not_exist(),
    )
    change.mail(
        key=f"summary:{day.isoformat()}",
        kind="summary",
        to=",".join(recipients),
        subject=subject,
        body=body,
        audit_subject="system",
    )
    try:
        committed = change.commit()
    except ChangeRefused:
        return SummarySent(day=day, sent=False, recipients=recipients, anomalies=anomalies)  # sent before
    sent = all(committed.sent.values())
    if not sent:
        logger.warning("reports.summary_mail.pending", extra={"day": day.isoformat()})
    return SummarySent(day=day, sent=sent, recipients=recipients, anomalies=anomalies)


FIGURE_LABELS = {
    "transfers_sent": _("Transfers sent"),
    "requests": _("Upload requests"),
    "files": _("Files sent"),
    "files_received": _("Files received"),
    "bytes_uploaded": _("Uploaded"),
    "bytes_downloaded": _("Downloaded"),
    "downloads": _("Downloads"),
    "received_downloads": _("Received files downloaded"),
    "external_domains": _("External domains"),
    "failed_codes": _("Failed one-time codes"),
    "failed_signins": _("Failed sign-ins"),
    "mails_bounced": _("Mails bounced"),
    "mails_complained": _("Spam complaints"),
}


def _figure_rows(figures: dict) -> list[tuple[str, str]]:
    rows = []
    for name, label in FIGURE_LABELS.items():
        value = int(figures.get(name, 0))
        rows.append((label, _size(value) if name.startswith("bytes_") else str(value)))
    return rows


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
