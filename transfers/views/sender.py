"""The sender's pages: New transfer, My transfers, one transfer (its upload page while pending), and the
revoke / extend / resend buttons. Employees only."""

from __future__ import annotations  # annotations naming services' results load no service module

from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from transfers import policy, selectors, services
from transfers.errors import TransferError
from transfers.forms import ExtendForm, TransferForm, extension_choices
from transfers.models import KIND_SEND, PENDING
from transfers.services import missend
from transfers.services.approvals import approval_status_for_owner
from transfers.views.common import client, employee_required, json_body, json_error, local_time, sender_page
from transfers.views.uploads import declared_json
from transfers.views.uppy_locale import UPPY_STRINGS

# Which form field a policy refusal is about, so the page can show it there.
_FIELD_OF = {
    "recipient_invalid": "recipients",
    "recipient_domain_refused": "recipients",
    "recipients_missing": "recipients",
    "too_many_recipients": "recipients",
    "recipients_unconfirmed": "recipients",
    "files_missing": "files",
    "too_many_files": "files",
    "file_too_large": "files",
    "file_empty": "files",
    "transfer_too_large": "files",
    "quota_exceeded": "files",
    "file_name_invalid": "files",
    "extension_blocked": "files",
    "expiry_invalid": "expiry_amount",
    "download_limit_invalid": "download_limit",
    "subject_invalid": "subject",
    # The limits of replies (checked as a request's limits are)
    "max_files_invalid": "reply_max_files",
    "max_file_bytes_invalid": "reply_max_file_size",
    "max_total_bytes_invalid": "reply_max_total_size",
    "extensions_invalid": "reply_allowed_extensions",
}


_UPLOADER_STRINGS = {
    "checking": gettext_lazy("Checking the transfer…"),
    "uploading": gettext_lazy("Uploading. Keep this page open until every file is done."),
    "verifying": gettext_lazy("Checking the file…"),
    # Whether each mail went out is on the transfer's page, which the uploader opens next (mail state per recipient).
    "released": gettext_lazy(
        "Sent: every file arrived and was checked. The transfer's page shows each recipient's mail."
    ),
    "allVerified": gettext_lazy("Every file arrived and was checked."),
    "someFailed": gettext_lazy("Some files did not arrive. Retry them, or remove them to send the rest."),
    "refused": gettext_lazy("%(name)s was refused after upload (%(reason)s). Add it again to retry."),
    "network": gettext_lazy("The server could not be reached. Check your connection and try again."),
    "resume": gettext_lazy("Add these files again to finish sending (parts already uploaded are not sent again):"),
    "notInTransfer": gettext_lazy("%(name)s is not one of this transfer's files."),
    "fixFields": gettext_lazy("Please correct the fields marked below."),
    "blocked": gettext_lazy("this type of file may not be sent."),
}


def uploader_config(*, transfer_id: str | None = None, files=()) -> dict:
    """What static/js/send.js needs: the endpoints, the policy limits (to warn early; the server decides) and,
    on a pending transfer's page, the files still to upload."""
    return {
        "createUrl": reverse("transfers:new"),
        "transferUrl": reverse("transfers:detail", args=["TRANSFER"]),
        # The per-file endpoints share this prefix: <prefix>authorize, <prefix>parts, ...
        "fileUrl": reverse("transfers:upload_done", args=["TRANSFER", "FILE"]).removesuffix("done"),
        "transferId": transfer_id,
        "maxFileSize": settings.FXFER_MAX_FILE_BYTES,
        "maxFiles": settings.FXFER_MAX_FILES,
        "maxTotalSize": settings.FXFER_MAX_TRANSFER_BYTES,
        "blockedExtensions": sorted(e.casefold().lstrip(".") for e in settings.FXFER_BLOCKED_EXTENSIONS),
        "maxExpiryDays": policy.max_expiry().days,
        "partUrlBatch": settings.FXFER_PART_URL_BATCH,
        "partPlan": policy.part_plan(),
        "files": [
            {"fileId": f.file_id, "name": f.name, "size": f.size, "state": f.state}
            for f in files
            if f.state != "verified"
        ],
        "strings": _UPLOADER_STRINGS,
        "uppyStrings": UPPY_STRINGS,
    }


@employee_required
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def transfer_new(request):
    """GET: the form and the uploader. POST (JSON, from the uploader): create the transfer, nothing uploaded."""
    if request.method != "POST":
        context = {"form": TransferForm(), "uploader": uploader_config(), "confirm": confirm_config()}
        return render(request, "transfers/new.html", context)
    form = TransferForm(json_body(request))
    if not form.is_valid():
        fields = {name: [str(m) for m in errors] for name, errors in form.errors.items()}
        return json_error("invalid", _("Please correct the fields marked below."), 400, fields=fields)
    try:
        created = services.transfer_create(sender=request.user, **form.service_arguments(), **client(request))
    except TransferError as error:
        field = _FIELD_OF.get(error.code, "__all__")
        return json_error(error.code, error.message, error.status, fields={field: [error.message]})
    url = reverse("transfers:detail", args=[created.transfer_id])
    return JsonResponse(declared_json(transfer_id=created.transfer_id, url=url, files=created.files), status=201)


@sender_page
@never_cache
@require_GET
def transfer_list(request):
    """My transfers, newest first, a page at a time, and what counts against the allowance (read with the page)."""
    cursor = request.GET.get("cursor") or None
    page = selectors.transfer_list_for_owner(owner_id=request.user.id, cursor=cursor, with_quota=True)
    usage = page.quota
    quota = {"in_flight": policy.bytes_text(usage.in_flight), "allowance": policy.bytes_text(usage.allowance)}
    return render(request, "transfers/list.html", {"page": page, "quota": quota})


@sender_page
@never_cache
@require_GET
def transfer_detail(request, transfer_id: str):
    """One transfer: files, recipients and their downloads, the buttons; its upload page while pending."""
    detail = selectors.transfer_detail_for_owner(owner_id=request.user.id, transfer_id=transfer_id)
    summary = detail.summary
    extend_to = extension_choices(created_at=summary.created_at, expires_at=summary.expires_at)
    context = {"detail": detail, "transfer": summary, "extend_to": extend_to}
    context["approval"] = approval_status_for_owner(owner_id=request.user.id, transfer_id=transfer_id)
    if summary.status == PENDING:
        context["uploader"] = uploader_config(transfer_id=transfer_id, files=detail.files)
        context["hold"] = missend.send_hold_for_owner(owner_id=request.user.id, transfer_id=transfer_id)
    return render(request, "transfers/detail.html", context)


def confirm_config() -> dict | None:
    """What static/js/confirm.js needs to ask for each recipient before Send; None when the policy is off."""
    if missend.confirm_policy() == missend.CONFIRM_OFF:
        return None
    return {
        "policy": missend.confirm_policy(),
        "internalDomains": [d.lower().lstrip("@.") for d in settings.FXFER_INTERNAL_DOMAINS],
        "holdMinutes": -(-settings.FXFER_SEND_HOLD_SECONDS // 60),
        "strings": {
            "outside": _("Outside the company"),
            "inside": _("In the company"),
            "confirm": _("Confirm %(email)s"),
        },
    }


@sender_page
@require_POST
def transfer_send_cancel(request, transfer_id: str):
    """Cancel a transfer during its mis-send hold: no mail leaves, its files are deleted."""
    try:
        done = missend.transfer_send_cancel(owner_id=request.user.id, transfer_id=transfer_id, **client(request))
    except TransferError as error:
        if error.code not in {"already_sent", "state_conflict"}:
            raise
        messages.error(request, error.message)
    else:
        if done.files_deleted:
            messages.success(request, _("Sending was cancelled. No mail was sent, and the files are deleted."))
        else:
            messages.success(request, _("Sending was cancelled. No mail was sent. The files are deleted at expiry."))
    return redirect("transfers:detail", transfer_id)


@sender_page
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def transfer_revoke(request, transfer_id: str):
    """GET: ask to confirm (a revoke cannot be undone). POST: stop every link, code and guest session now."""
    if request.method != "POST":
        detail = selectors.transfer_detail_for_owner(owner_id=request.user.id, transfer_id=transfer_id)
        return render(request, "transfers/revoke_confirm.html", {"detail": detail, "transfer": detail.summary})
    services.transfer_revoke(owner_id=request.user.id, transfer_id=transfer_id, ip=client(request)["ip"])
    messages.success(request, _("The transfer was revoked. Its links no longer work."))
    return redirect("transfers:detail", transfer_id)


@sender_page
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def transfer_delete(request, transfer_id: str):
    """GET: ask to confirm. POST: delete the files now (every stored version); the receipts show on the page."""
    if request.method != "POST":
        detail = selectors.transfer_detail_for_owner(owner_id=request.user.id, transfer_id=transfer_id)
        return render(request, "transfers/delete_confirm.html", {"detail": detail, "transfer": detail.summary})
    deleted = services.transfer_delete_now(
        owner_id=request.user.id, transfer_id=transfer_id, kind=KIND_SEND, **client(request)
    )
    messages.success(
        request,
        _("The files were deleted. %(count)s deletion receipts are listed below.") % {"count": len(deleted.receipts)},
    )
    return redirect("transfers:detail", transfer_id)


@sender_page
@require_POST
def transfer_extend(request, transfer_id: str):
    form = ExtendForm(request.POST)
    if not form.is_valid():
        raise TransferError("expiry_invalid")
    extended = services.transfer_extend(
        owner_id=request.user.id,
        transfer_id=transfer_id,
        expires_at=form.cleaned_data["expires_at"],
        ip=client(request)["ip"],
    )
    messages.success(
        request, _("The transfer is now available until %(time)s.") % {"time": local_time(extended.expires_at)}
    )
    return redirect("transfers:detail", transfer_id)


@sender_page
@require_POST
def recipient_resend(request, transfer_id: str, recipient_id: str):
    sent = services.recipient_resend(
        owner_id=request.user.id,
        transfer_id=transfer_id,
        recipient_id=recipient_id,
        kind=KIND_SEND,
        ip=client(request)["ip"],
    )
    resent_message(request, sent)
    return redirect("transfers:detail", transfer_id)


def resent_message(request, sent: services.LinkResent) -> None:
    """Say what happened to a resent link's mail: only an accepted mail replaces the old link."""
    if sent.status == "sent":
        messages.success(
            request, _("A new link was sent to %(email)s. The old one no longer works.") % {"email": sent.email}
        )
    elif sent.status == "failed":
        messages.error(
            request,
            _("The new link could not be sent to %(email)s (%(reason)s). The old link still works.")
            % {"email": sent.email, "reason": sent.error or _("refused")},
        )
    else:
        messages.warning(
            request,
            _(
                "The mail to %(email)s could not be sent yet; it is being retried. The old link works until the "
                "new one has been sent."
            )
            % {"email": sent.email},
        )


def mails_message(request, outcomes, *, all_sent: str) -> None:
    """One message per outcome of the mails a change caused: all accepted, being retried, or failed and why."""
    sent = [m.to for m in outcomes if m.status == "sent"]
    pending = [m.to for m in outcomes if m.status == "pending"]
    failed = [m for m in outcomes if m.status == "failed"]
    if sent and not pending and not failed:
        messages.success(request, all_sent)
        return
    if sent:
        messages.success(request, _("Mailed: %(emails)s.") % {"emails": ", ".join(sent)})
    if pending:
        messages.warning(
            request,
            _("Not mailed yet, being retried: %(emails)s. This page shows when each mail has gone out.")
            % {"emails": ", ".join(pending)},
        )
    for mail in failed:
        messages.error(
            request,
            _("The mail to %(email)s could not be sent (%(reason)s).")
            % {"email": mail.to, "reason": mail.error or _("refused")},
        )
