"""The guest's pages. The link's page (GET) only looks; everything that uses something up (a code, a
download, an upload) is a POST with CSRF, so mail scanners that prefetch links change nothing. After a right
code the guest session holds only the recipient's and transfer's (or request's) ids and the grant, and every
page checks them again through the services. A transfer's recipient downloads; a request's guest uploads
(and a transfer's recipient may reply with files, when the sender allowed it)."""

import functools

from botocore.exceptions import BotoCoreError, ClientError
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from pynamodb.exceptions import PynamoDBException

from fxfer.aws import transient
from transfers import selectors, services
from transfers.errors import TransferError
from transfers.forms import CodeForm, FinishForm, declared_files
from transfers.models import KIND_REQUEST
from transfers.outbox import new_nonce
from transfers.views.common import (
    GUEST_DOWNLOAD_SESSION,
    GUEST_UPLOAD_SESSION,
    client,
    error_page,
    guest_scope,
    json_body,
    json_error,
)
from transfers.views.uploads import declared_json

AWS_FAILURES = (PynamoDBException, BotoCoreError, ClientError)


def _busy(error: TransferError) -> bool:
    return error.code in {"unavailable", "mail_delayed"}


def _aws_refusal(exc: Exception) -> TransferError:
    """AWS failing for good (after its retries) on a guest page: the truth is "busy, nothing lost, try again"."""
    if not transient(exc):
        raise exc
    return TransferError("unavailable")


def guest_page(view):
    """Refusals become the guest's pages: one 404 for every unknown, foreign, revoked or expired link; a 503 page
    that says nothing was lost when AWS is failing (never a server error)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except TransferError as error:
            return _guest_error(request, error)
        except AWS_FAILURES as exc:
            return _guest_error(request, _aws_refusal(exc))

    return never_cache(wrapped)


def _guest_error(request, error: TransferError):
    if _busy(error):
        return render(request, "transfers/guest/unavailable.html", {"error": error}, status=error.status)
    return error_page(request, error, guest=True)


def _access(request) -> dict:
    return guest_scope(request, GUEST_DOWNLOAD_SESSION)


def _uploading(request) -> dict:
    return guest_scope(request, GUEST_UPLOAD_SESSION)


@guest_page
@require_safe
def link(request, token: str):
    """Who sent the files and where the code will go; a button to get the code."""
    found = services.guest_link_open(token=token, **client(request))
    if found.locked:
        raise TransferError("locked")
    return render(request, "transfers/guest/link.html", {"link": found, "token": token})


@guest_page
@require_POST
def code_send(request, token: str):
    """Mail a one-time code to the recipient's own address, then ask for it."""
    try:
        services.guest_code_send(token=token, **client(request))
    except TransferError as error:
        if error.code not in {"rate_limited", "mail_delayed"}:
            raise
        # The link's page again, saying what happened to the code: asked too often, or not sent (yet).
        found = services.guest_link_open(token=token, **client(request))
        context = {"link": found, "token": token, "error": error}
        return render(request, "transfers/guest/link.html", context, status=error.status)
    return HttpResponseRedirect(reverse("transfers:guest_code", args=[token]), status=303)


@guest_page
@require_http_methods(["GET", "HEAD", "POST"])
def code_enter(request, token: str):
    """The code form; a right code opens a short guest session for this recipient and transfer."""
    form = CodeForm(request.POST if request.method == "POST" else None)
    context = {"form": form, "token": token, "link": services.guest_link_open(token=token, **client(request))}
    if not form.is_valid():
        return render(request, "transfers/guest/code.html", context, status=400 if form.is_bound else 200)
    try:
        granted = services.guest_code_verify(token=token, code=form.cleaned_data["code"], **client(request))
    except TransferError as error:
        if error.code not in {"code_wrong", "code_expired"}:
            raise
        return render(request, "transfers/guest/code.html", {**context, "error": error}, status=400)
    return _open_session(request, granted)


def _open_session(request, granted: services.AccessGranted):
    """Keep the grant in a new session key and go to the guest's page: their files, or their upload page."""
    request.session.cycle_key()  # a new session key whenever access is granted
    uploads = granted.kind == KIND_REQUEST
    request.session[GUEST_UPLOAD_SESSION if uploads else GUEST_DOWNLOAD_SESSION] = {
        "transfer_id": granted.transfer_id,
        "recipient_id": granted.recipient_id,
        "grant": granted.grant,
    }
    # A download grant ends at a fixed time; an upload grant slides with use (a long upload keeps it alive), so
    # its session ends after the same time without use.
    request.session.set_expiry(settings.FXFER_GUEST_ACCESS_SECONDS if uploads else granted.expires_at)
    target = "transfers:guest_upload" if uploads else "transfers:guest_files"
    return HttpResponseRedirect(reverse(target), status=303)


@guest_page
@require_safe
def files(request):
    """The files of the transfer this session may see: name, size, checksum, a Download button each."""
    shown = selectors.guest_files(**_access(request))
    # Names this page's download presses: a press sent again (the answer never came) is recognised, not recounted.
    context = {"shown": shown, "download_request": new_nonce()}
    return render(request, "transfers/guest/files.html", context)


@guest_page
@require_POST
def download(request, file_id: str):
    """Use one download of the file and send the browser to a short-lived presigned GET (303)."""
    issued = services.guest_download_url(
        **_access(request), file_id=file_id, request_id=request.POST.get("request_id"), **client(request)
    )
    return HttpResponseRedirect(issued.url, status=303)


@guest_page
@require_POST
def reply(request):
    """A transfer's recipient starts a reply with files (when the sender allowed it): its upload page."""
    granted = services.reply_open(**_access(request), **client(request))
    return _open_session(request, granted)


_GUEST_UPLOADER_STRINGS = {
    "checking": _lazy("Checking your files…"),
    "uploading": _lazy("Uploading. Keep this page open until every file is done."),
    "verifying": _lazy("Checking the file…"),
    "released": _lazy("Every file arrived and was checked."),
    "allVerified": _lazy("Every file arrived and was checked. Add more, or press Finish when you are done."),
    "someFailed": _lazy("Some files did not arrive. Retry them, or remove them and finish with the rest."),
    "refused": _lazy("%(name)s was refused after upload (%(reason)s). Add it again to retry."),
    "addFiles": _lazy("Add at least one file."),
    "network": _lazy("The server could not be reached. Check your connection and try again."),
    "resume": _lazy("Add these files again to finish uploading them (parts already uploaded are not sent again):"),
    "notInTransfer": _lazy("%(name)s is not one of the files being uploaded. Finish these first."),
    "fixFields": _lazy("Please check your files."),
    "blocked": _lazy("this type of file may not be sent."),
    "notAllowed": _lazy("this type of file was not asked for."),
}


def _guest_uploader_config(shown: selectors.GuestRequest) -> dict:
    """What static/js/send.js needs on a guest's upload page: the guest endpoints (no ids in them: the session
    names the request), the limits left, and any unfinished uploads to resume."""
    unfinished = [u for u in shown.uploads if u.state != "verified"]
    return {
        "createUrl": reverse("transfers:guest_upload_files"),
        "transferUrl": reverse("transfers:guest_upload"),
        "fileUrl": reverse("transfers:guest_upload_done", args=["FILE"]).removesuffix("done"),
        # Unfinished uploads first: the page resumes them before new files may be added.
        "transferId": shown.request_id if unfinished else None,
        "maxFileSize": shown.limits.max_file_bytes,
        "maxFiles": shown.files_left,
        "maxTotalSize": shown.bytes_left,
        "blockedExtensions": sorted(e.casefold().lstrip(".") for e in settings.FXFER_BLOCKED_EXTENSIONS),
        "allowedExtensions": list(shown.limits.allowed_extensions),
        "partUrlBatch": settings.FXFER_PART_URL_BATCH,
        "hashBelowSize": settings.FXFER_MULTIPART_THRESHOLD,
        "files": [{"fileId": u.file_id, "name": u.name, "size": u.size, "state": u.state} for u in unfinished],
        "strings": _GUEST_UPLOADER_STRINGS,
    }


@guest_page
@require_safe
def upload_page(request):
    """What is asked, the limits left, the guest's own uploads so far, the uploader and Finish."""
    return _upload_page(request, finish=FinishForm())


def _upload_page(request, *, finish: FinishForm, status: int = 200):
    shown = selectors.guest_request(**_uploading(request))
    context = {"shown": shown, "uploader": _guest_uploader_config(shown), "finish": finish}
    return render(request, "transfers/guest/upload.html", context, status=status)


@never_cache
@require_POST
def upload_files(request):
    """The guest's uploader declares the files it is about to send (JSON); each gets its upload plan."""
    try:
        files = declared_files(json_body(request).get("files"))
    except forms.ValidationError as error:
        return json_error("invalid", error.messages[0], 400, fields={"files": error.messages})
    try:
        try:
            declared = services.request_files_declare(**_uploading(request), files=files, **client(request))
        except AWS_FAILURES as exc:
            raise _aws_refusal(exc) from exc
    except TransferError as error:
        return json_error(error.code, error.message, error.status, fields={"files": [error.message]})
    body = declared_json(transfer_id=declared.request_id, url=reverse("transfers:guest_upload"), files=declared.files)
    return JsonResponse(body, status=201)


@guest_page
@require_POST
def finish(request):
    """The guest is done: the employee is told by mail, with the note."""
    form = FinishForm(request.POST)
    if not form.is_valid():  # the page again, with the note as typed and what is wrong with it
        return _upload_page(request, finish=form, status=400)
    try:
        done = services.request_finish(**_uploading(request), note=form.cleaned_data["note"], **client(request))
    except TransferError as error:
        if error.code not in {"files_missing", "rate_limited"}:
            raise
        messages.error(request, error.message)
        return HttpResponseRedirect(reverse("transfers:guest_upload"), status=303)
    if done.mailed:
        messages.success(request, _("Thank you. The person who asked for the files has been told by mail."))
    else:
        messages.warning(
            request, _("Thank you. Your files are there, but the notice mail could not be sent: please tell them.")
        )
    if done.dropped:
        messages.warning(request, _("%(count)d unfinished upload(s) were dropped.") % {"count": done.dropped})
    return HttpResponseRedirect(reverse("transfers:guest_upload"), status=303)
