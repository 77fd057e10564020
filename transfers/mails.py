"""The mails transfers send, as drafts: each function renders one message and returns it; the service that
causes it commits it to the outbox (fxfer.change.Change.mail) with its state change, and transfers.outbox
sends it through Django's mail API (django-ses in AWS; any backend in tests).

Plain text, one message per person: a recipient's link or code never shares a message with anyone else.
A link or code is never rendered into a draft: pass transfers.outbox.PLACEHOLDER, which the outbox replaces
when it sends. Times are shown in the company's time zone.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext as _

from fxfer.i18n import local_time
from transfers.policy import bytes_text


def _local(moment: datetime) -> str:
    # The mail's language decides the format (translation.override around the draft for a guest's language).
    return local_time(moment)


@dataclass(frozen=True)
class Draft:
    """One rendered mail, not yet sent."""

    to: str
    subject: str
    body: str
    reply_to: str | None = None

    def fields(self) -> dict:
        return {"to": self.to, "subject": self.subject, "body": self.body, "reply_to": self.reply_to}


def _send(*, to: str, subject: str, body: str, reply_to: str | None = None) -> Draft:
    # Subjects carry user input: one line, so no header can be smuggled in.
    subject = " ".join(subject.split())[:250]
    return Draft(to=to, subject=subject, body=body, reply_to=reply_to)


def _sender(name: str, email: str) -> str:
    return f"{name} <{email}>" if name else email


def link_mail(
    *,
    to: str,
    link: str,
    sender_name: str,
    sender_email: str,
    subject: str,
    message: str,
    files: list[tuple[str, int]],
    expires_at: datetime,
) -> Draft:
    """A recipient's own link to the files."""
    who = _sender(sender_name, sender_email)
    lines = [
        _("%(who)s has sent you files through %(site)s.") % {"who": who, "site": settings.FXFER_BASE_URL},
        "",
    ]
    if subject:
        lines += [_("Subject: %(subject)s") % {"subject": subject}, ""]
    if message:
        lines += [message, ""]
    lines += [_("Files:")] + [f"  - {name} ({bytes_text(size)})" for name, size in files] + [""]
    lines += [
        _("Open this link to download them (it is yours alone; do not forward it):"),
        link,
        "",
        _("You will be asked for a one-time code, which we send to this address."),
        _("The files are available until %(time)s.") % {"time": _local(expires_at)},
    ]
    mail_subject = _("%(who)s sent you files") % {"who": sender_name or sender_email}
    if subject:
        mail_subject = f"{mail_subject}: {subject}"
    return _send(to=to, subject=mail_subject, body="\n".join(lines), reply_to=sender_email)


def code_mail(*, to: str, code: str, sender_name: str, expires_at: datetime, upload: bool = False) -> Draft:
    """The one-time code, to the recipient's own address only (`upload`: a guest asked for files)."""
    intro = (
        _("Your one-time code to upload files for %(who)s:")
        if upload
        else _("Your one-time code for the files from %(who)s:")
    )
    body = "\n".join(
        [
            intro % {"who": sender_name},
            "",
            f"    {code}",
            "",
            _("It is valid until %(time)s and can be used once.") % {"time": _local(expires_at)},
            _("If you did not ask for it, ignore this mail; nobody can use the link without the code."),
        ]
    )
    return _send(to=to, subject=_("Your one-time code"), body=body)


def download_notice_mail(
    *, to: str, recipient: str, file_name: str, subject: str, at: datetime, ip: str | None
) -> Draft:
    """Tell the sender a recipient started downloading: who, the first file, when, from where. One per visit
    (the guest session a code opened), so the other files of that visit are not mailed one by one."""
    body = "\n".join(
        [
            _("%(recipient)s downloaded %(file)s.") % {"recipient": recipient, "file": file_name},
            "",
            _("Transfer: %(subject)s") % {"subject": subject or "-"},
            _("When: %(time)s") % {"time": _local(at)},
            _("From IP address: %(ip)s") % {"ip": ip or "-"},
            "",
            _(
                "You get one such mail per visit of a recipient. Other files they download in the same visit are "
                "not mailed; My transfers shows every download."
            ),
        ]
    )
    return _send(
        to=to, subject=_("%(recipient)s downloaded %(file)s") % {"recipient": recipient, "file": file_name}, body=body
    )


def locked_notice_mail(*, to: str, recipient: str, subject: str, at: datetime, ip: str | None) -> Draft:
    """Tell the sender a recipient's access was locked after too many wrong codes."""
    body = "\n".join(
        [
            _("Access for %(recipient)s was locked after %(count)d wrong one-time codes.")
            % {"recipient": recipient, "count": settings.FXFER_CODE_ATTEMPTS},
            "",
            _("Transfer: %(subject)s") % {"subject": subject or "-"},
            _("When: %(time)s") % {"time": _local(at)},
            _("Last attempt from IP address: %(ip)s") % {"ip": ip or "-"},
            "",
            _("If this was your recipient, send them the link again from My transfers; this unlocks their access."),
        ]
    )
    return _send(to=to, subject=_("Access locked for %(recipient)s") % {"recipient": recipient}, body=body)


def request_mail(
    *,
    to: str,
    link: str,
    sender_name: str,
    sender_email: str,
    subject: str,
    message: str,
    closes_at: datetime,
    limits: str,
) -> Draft:
    """A guest's own link to upload the files an employee asks for."""
    who = _sender(sender_name, sender_email)
    lines = [_("%(who)s asks you to send files through %(site)s.") % {"who": who, "site": settings.FXFER_BASE_URL}, ""]
    if subject:
        lines += [_("Subject: %(subject)s") % {"subject": subject}, ""]
    if message:
        lines += [message, ""]
    lines += [
        _("Open this link to upload them (it is yours alone; do not forward it):"),
        link,
        "",
        _("You will be asked for a one-time code, which we send to this address."),
        _("You can upload until %(time)s.") % {"time": _local(closes_at)},
        limits,
    ]
    mail_subject = _("%(who)s asks you for files") % {"who": sender_name or sender_email}
    if subject:
        mail_subject = f"{mail_subject}: {subject}"
    return _send(to=to, subject=mail_subject, body="\n".join(lines), reply_to=sender_email)


def request_finished_mail(
    *,
    to: str,
    guest: str,
    subject: str,
    note: str,
    files: list[tuple[str, int]],
    link: str,
    reply: bool,
    at: datetime,
) -> Draft:
    """Tell the employee a guest has finished uploading: what arrived, the guest's note, where to get it."""
    what = _("%(guest)s replied with files.") if reply else _("%(guest)s has finished uploading files.")
    lines = [what % {"guest": guest}, ""]
    lines += [_("Request: %(subject)s") % {"subject": subject or "-"}, _("When: %(time)s") % {"time": _local(at)}, ""]
    if files:
        lines += [_("Files (checked after upload):")] + [f"  - {name} ({bytes_text(size)})" for name, size in files]
    else:
        lines += [_("No files were uploaded.")]
    if note:
        lines += ["", _("Note from %(guest)s:") % {"guest": guest}, note]
    lines += ["", _("Download them here (sign-in required):"), link]
    return _send(to=to, subject=_("Files from %(guest)s") % {"guest": guest}, body="\n".join(lines))


def bounce_notice_mail(
    *,
    to: str,
    recipient: str,
    subject: str,
    reason: str,
    permanent: bool,
    request: bool,
    at: datetime,
    page: str,
) -> Draft:
    """Tell the sender their mail to a guest bounced, why, and what to do: a permanent bounce never arrives (the
    address is wrong or gone); a transient one may still arrive."""
    what = _("Request") if request else _("Transfer")
    if permanent:
        lines = [
            _("Your mail to %(recipient)s could not be delivered: %(reason)s")
            % {"recipient": recipient, "reason": reason},
            "",
            _("The link in it did not reach them. Check the address with them;")
            + " "
            + (
                _("to receive their files, make a new request to the correct address.")
                if request
                else _("to send them the files, make a new transfer to the correct address.")
            ),
        ]
        mail_subject = _("Mail to %(recipient)s could not be delivered") % {"recipient": recipient}
    else:
        lines = [
            _("Your mail to %(recipient)s was not delivered yet: %(reason)s")
            % {"recipient": recipient, "reason": reason},
            "",
            _("It may still arrive. If they do not find it, send the link again later from the page below."),
        ]
        mail_subject = _("Mail to %(recipient)s may not have arrived") % {"recipient": recipient}
    lines += [
        "",
        f"{what}: {subject or '-'}",
        _("When: %(time)s") % {"time": _local(at)},
        "",
        page,
    ]
    return _send(to=to, subject=mail_subject, body="\n".join(lines))


def approval_request_mail(
    *,
    to: str,
    sender_name: str,
    sender_email: str,
    subject: str,
    message: str,
    recipients: list[str],
    external: list[str],
    files: list[tuple[str, int]],
    due_at: datetime | None,
    link: str,
) -> Draft:
    """Ask an approver (the sender's manager, their delegate or the approvers' group) to approve a transfer
    before its recipients are mailed; the decision is made in the portal (sign-in required)."""
    who = _sender(sender_name, sender_email)
    lines = [_("%(who)s asks you to approve sending files outside the company.") % {"who": who}, ""]
    lines += [_("Subject: %(subject)s") % {"subject": subject or "-"}]
    lines += [_("To: %(recipients)s") % {"recipients": ", ".join(recipients)}]
    if external:
        lines += [_("Outside domains: %(domains)s") % {"domains": ", ".join(external)}]
    lines += ["", _("Files:")] + [f"  - {name} ({bytes_text(size)})" for name, size in files]
    lines += [_("Every file has arrived and passed the malware scan; you may download each one to look at it.")]
    if message:
        lines += ["", _("Message:"), message]
    lines += ["", _("Approve or reject it here (sign-in required):"), link]
    if due_at:
        lines += ["", _("Without an answer by %(time)s the transfer is not sent.") % {"time": _local(due_at)}]
    lines += ["", _("Away? Name a delegate for your approvals here:"), f"{settings.FXFER_BASE_URL}/approvals/"]
    mail_subject = _("Approval requested: %(who)s") % {"who": sender_name or sender_email}
    if subject:
        mail_subject = f"{mail_subject}: {subject}"
    return _send(to=to, subject=mail_subject, body="\n".join(lines), reply_to=sender_email)


def approval_decided_mail(*, to: str, state: str, by: str, comment: str, subject: str, page: str) -> Draft:
    """Tell the sender what became of their approval request: approved (the recipients are mailed once the
    files are ready), rejected with the approver's comment, or timed out (never sent)."""
    if state == "approved":
        lines = [
            _("%(who)s approved your transfer.") % {"who": by},
            _("Its recipients get their links once every file has arrived and been checked."),
        ]
        mail_subject = _("Approved: %(subject)s") % {"subject": subject or "-"}
    elif state == "rejected":
        lines = [
            _("%(who)s rejected your transfer. Nothing was sent; its files are deleted.") % {"who": by},
            "",
            _("Comment:"),
            comment,
        ]
        mail_subject = _("Rejected: %(subject)s") % {"subject": subject or "-"}
    else:
        lines = [_("Nobody approved your transfer in time. Nothing was sent; its files are deleted.")]
        mail_subject = _("Not approved in time: %(subject)s") % {"subject": subject or "-"}
    if comment and state == "approved":
        lines += ["", _("Comment:"), comment]
    lines += ["", _("Transfer: %(subject)s") % {"subject": subject or "-"}, page]
    return _send(to=to, subject=mail_subject, body="\n".join(lines))


def scan_blocked_mail(
    *,
    to: str,
    file_name: str,
    infected: bool,
    threat: str,
    subject: str,
    uploader: str | None,
    at: datetime,
    link: str,
    compliance: bool,
    owner: str | None = None,
) -> Draft:
    """Tell the owner (who sent the file, or asked for it) or compliance that the malware scan blocked a file:
    malware found, or it could not be scanned. Nobody downloads it; compliance may release a false positive."""
    if infected:
        first = _("The malware scan found malware in %(file)s: %(threat)s.") % {
            "file": file_name,
            "threat": threat or _("no name given"),
        }
        mail_subject = _("Malware found in %(file)s") % {"file": file_name}
    else:
        first = _("%(file)s could not be scanned for malware (%(threat)s).") % {
            "file": file_name,
            "threat": threat or _("the scanner gave no reason"),
        }
        mail_subject = _("%(file)s could not be scanned for malware") % {"file": file_name}
    lines = [first, ""]
    if uploader:
        lines.append(_("Uploaded by: %(guest)s") % {"guest": uploader})
    if owner:
        lines.append(_("Owner: %(owner)s") % {"owner": owner})
    lines += [
        _("Transfer: %(subject)s") % {"subject": subject or "-"},
        _("When: %(time)s") % {"time": _local(at)},
        "",
    ]
    if compliance:
        lines.append(
            _("The file is blocked. If it is a false positive, release it with a reason on its compliance page:")
        )
    elif uploader:
        lines.append(_("The file is blocked: nobody can download it. Compliance has been told."))
    else:
        lines.append(_("The file is blocked and the transfer will not be sent while it is. Compliance has been told."))
    lines.append(link)
    return _send(to=to, subject=mail_subject, body="\n".join(lines))
