"""The employee's side of upload requests: Request files, the Received list, one request (its guests, the files
they sent, download, delete, close early, resend a guest's link). Employees only."""

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from transfers import selectors, services
from transfers.errors import TransferError
from transfers.forms import RequestForm
from transfers.models import KIND_REQUEST
from transfers.views.common import client, local_time, sender_page
from transfers.views.sender import mails_message, resent_message

# Which form field a policy refusal is about, so the page can show it there.
_FIELD_OF = {
    "recipient_invalid": "recipients",
    "recipient_domain_refused": "recipients",
    "recipients_missing": "recipients",
    "too_many_recipients": "recipients",
    "expiry_invalid": "closes_amount",
    "keep_days_invalid": "keep_days",
    "max_files_invalid": "max_files",
    "max_file_bytes_invalid": "max_file_size",
    "max_total_bytes_invalid": "max_total_size",
    "extensions_invalid": "allowed_extensions",
    "subject_invalid": "subject",
}


@sender_page
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def request_new(request):
    """The Request files form; a valid one creates the request and mails each guest their link."""
    form = RequestForm(request.POST if request.method == "POST" else None)
    status = 400 if form.is_bound else 200
    if form.is_valid():
        try:
            created = services.request_create(sender=request.user, **form.service_arguments(), **client(request))
        except TransferError as error:
            form.add_error(_FIELD_OF.get(error.code), error.message)
            status = error.status  # 503 when AWS kept failing: nothing was created, the form is kept to try again
        else:
            mails_message(request, created.mails, all_sent=_("Each person was mailed their own upload link."))
            return redirect("transfers:request_detail", created.request_id)
    return render(request, "transfers/requests/new.html", {"form": form}, status=status)


@sender_page
@never_cache
@require_GET
def request_list(request):
    """Received: the employee's requests and the replies to their transfers, newest first."""
    page = selectors.request_list_for_owner(owner_id=request.user.id, cursor=request.GET.get("cursor") or None)
    return render(request, "transfers/requests/list.html", {"page": page})


@sender_page
@never_cache
@require_GET
def request_detail(request, request_id: str):
    """One request: who was asked, who finished (with their note), every file with size, checksum, uploader."""
    detail = selectors.request_detail_for_owner(owner_id=request.user.id, request_id=request_id)
    return render(request, "transfers/requests/detail.html", {"detail": detail, "req": detail.summary})


@sender_page
@require_POST
def request_download(request, request_id: str, file_id: str):
    """A short-lived presigned GET of one verified received file (303)."""
    issued = services.received_download_url(
        owner_id=request.user.id, transfer_id=request_id, file_id=file_id, **client(request)
    )
    return HttpResponseRedirect(issued.url, status=303)


@sender_page
@require_POST
def request_close(request, request_id: str):
    closed = services.request_close(owner_id=request.user.id, transfer_id=request_id, **client(request))
    messages.success(
        request,
        _("The request is closed: its links no longer work. Received files are kept until %(time)s.")
        % {"time": local_time(closed.expires_at)},
    )
    return redirect("transfers:request_detail", request_id)


@sender_page
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def request_delete(request, request_id: str):
    """GET: ask to confirm. POST: delete every received file now, with a receipt each; the links die."""
    if request.method != "POST":
        detail = selectors.request_detail_for_owner(owner_id=request.user.id, request_id=request_id)
        return render(request, "transfers/requests/delete_confirm.html", {"detail": detail, "req": detail.summary})
    deleted = services.transfer_delete_now(
        owner_id=request.user.id, transfer_id=request_id, kind=KIND_REQUEST, **client(request)
    )
    messages.success(
        request,
        _("The files were deleted. %(count)s deletion receipts are listed below.") % {"count": len(deleted.receipts)},
    )
    return redirect("transfers:request_detail", request_id)


@sender_page
@require_POST
def request_resend(request, request_id: str, recipient_id: str):
    sent = services.recipient_resend(
        owner_id=request.user.id,
        transfer_id=request_id,
        recipient_id=recipient_id,
        kind=KIND_REQUEST,
        ip=client(request)["ip"],
    )
    resent_message(request, sent)
    return redirect("transfers:request_detail", request_id)
