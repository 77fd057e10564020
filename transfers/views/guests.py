"""The guest's pages. The link's page (GET) only looks; everything that uses something up (a code, a
download, an upload) is a POST with CSRF, so mail scanners that prefetch links change nothing. After a right
code the guest session holds only the recipient's and transfer's (or request's) ids and the grant, and every
page checks them again through the services. A transfer's recipient downloads; a request's guest uploads
(and a transfer's recipient may reply with files, when the sender allowed it).

The link token never stays in a URL. The mailed link /t/<token> is answered, without looking anything up, by
a cookie that holds the token and a redirect to /guest/link/<link id>; the link's page, the code request and
the code form read the token from that cookie only. So the token is in no browser history entry but the
mail's own, in no Referer, in no later request line a proxy or a log sees.

How the cookie is bound to its link: each link has its own cookie, named after its link id (the first 16
hex digits of the token's SHA-256, the same id the audit trail names a link by), and the token-free URLs
carry that id. The id is not a secret (nothing accepts a hash in place of a token, and 64 bits of a hash do
not lead back to 256 random bits); it only says which cookie a page reads, and a cookie counts only when its
token hashes to the id it is read for. Two links opened in one browser (two transfers to the same guest, or
a request and a transfer) therefore live side by side, each tab on its own link, with no "last opened wins".
The cookie is `__Host-` (Secure, Path=/, no Domain) where the site is served over https, HttpOnly,
SameSite=Lax (it must come along when the mail client opens the link), and lives LINK_COOKIE_SECONDS; it is
deleted once a right code has opened the guest session. Without it (too late, another browser), the page
says to open the link from the mail again.
"""

from __future__ import annotations  # annotations naming services' results load no service module

import functools
import re

from botocore.exceptions import BotoCoreError, ClientError
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from pynamodb.exceptions import PynamoDBException

from fxfer import i18n
from fxfer.aws import transient
from transfers import policy, selectors, services
from transfers.errors import TransferError
from transfers.forms import CodeForm, FinishForm, declared_files
from transfers.models import KIND_REQUEST
from transfers.outbox import new_nonce
from transfers.services.common import token_hash, token_well_formed
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
from transfers.views.uppy_locale import UPPY_STRINGS

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


# Long enough to ask for a code, wait for its mail and type it in (a code lives 10 minutes); short enough that
# a browser left open does not keep a live token for long.
LINK_COOKIE_SECONDS = 30 * 60
_LINK_ID = re.compile(r"^[0-9a-f]{16}$")


def link_id_of(token: str) -> str:
    """The non-secret id a link's token-free URLs and its cookie are named by (see the module docstring)."""
    return token_hash(token)[:16]


def _link_cookie(link_id: str) -> str:
    # __Host-: Secure, path /, no Domain, so no sibling subdomain can read or plant it. Plain http (make run)
    # cannot set a Secure cookie; the session cookie decides for both.
    prefix = "__Host-" if settings.SESSION_COOKIE_SECURE else ""
    return f"{prefix}fxfer-link-{link_id}"


def _held_token(request, link_id: str) -> str:
    """The token this browser holds for `link_id`. No cookie (opened too long ago, or in another browser) or
    one that does not belong to the id: the guest must open the link from their mail again."""
    token = request.COOKIES.get(_link_cookie(link_id), "") if _LINK_ID.match(link_id) else ""
    if not token_well_formed(token) or link_id_of(token) != link_id:
        raise TransferError("access_expired")
    return token


@never_cache  # the answer carries the token in a cookie: no cache may keep it
@require_http_methods(["GET", "HEAD", "POST"])
def link(request, token: str):
    """The mailed link: the token moves into this link's cookie and the browser goes on to the token-free
    page. A GET looks nothing up and uses nothing up (mail scanners prefetch). The URLs of earlier versions
    (/t/<token>/code, /t/<token>/verify) come here too and do only this: no code is sent, none checked."""
    if not token_well_formed(token):
        return _not_a_link(request, token)
    link_id = link_id_of(token)
    response = HttpResponseRedirect(reverse("transfers:guest_link", args=[link_id]), status=303)
    response.set_cookie(
        _link_cookie(link_id),
        token,
        max_age=LINK_COOKIE_SECONDS,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


@guest_page
def _not_a_link(request, token: str):
    """Cannot be anyone's link: the same 404 as every other wrong token, counted against this address."""
    services.guest_link_open(token=token, **client(request))  # refuses (not_found, or rate_limited)
    raise TransferError("not_found")


@guest_page
@require_safe
def link_page(request, link_id: str):
    """Who sent the files and where the code will go; a button to get the code."""
    found = services.guest_link_open(token=_held_token(request, link_id), **client(request))
    if found.locked:
        raise TransferError("locked")
    language = i18n.start_in(request, found.language)  # the sender's choice for this person, unless they chose
    return i18n.remember(render(request, "transfers/guest/link.html", {"link": found, "link_id": link_id}), language)


@guest_page
@require_POST
def code_send(request, link_id: str):
    """Mail a one-time code to the recipient's own address, then ask for it."""
    token = _held_token(request, link_id)
    try:
        services.guest_code_send(token=token, **client(request))
    except TransferError as error:
        if error.code not in {"rate_limited", "mail_delayed"}:
            raise
        # The link's page again, saying what happened to the code: asked too often, or not sent (yet).
        found = services.guest_link_open(token=token, **client(request))
        context = {"link": found, "link_id": link_id, "error": error}
        return render(request, "transfers/guest/link.html", context, status=error.status)
    # "sent" lets the code page say a code was just mailed; reached by "I already have a code" it does not.
    return HttpResponseRedirect(reverse("transfers:guest_code", args=[link_id]) + "?sent=1", status=303)


@guest_page
@require_http_methods(["GET", "HEAD", "POST"])
def code_enter(request, link_id: str):
    """The code form; a right code opens a short guest session for this recipient and transfer."""
    token = _held_token(request, link_id)
    form = CodeForm(request.POST if request.method == "POST" else None)
    context = {
        "form": form,
        "link_id": link_id,
        "link": services.guest_link_open(token=token, **client(request)),
        "sent": request.GET.get("sent") == "1",
        "max_attempts": settings.FXFER_CODE_ATTEMPTS,
    }
    if not form.is_valid():
        return render(request, "transfers/guest/code.html", context, status=400 if form.is_bound else 200)
    try:
        granted = services.guest_code_verify(token=token, code=form.cleaned_data["code"], **client(request))
    except TransferError as error:
        if error.code not in {"code_wrong", "code_expired"}:
            raise
        return render(request, "transfers/guest/code.html", {**context, "error": error}, status=400)
    response = _open_session(request, granted)
    # The session holds the grant now; the token has done its work in this browser.
    response.delete_cookie(_link_cookie(link_id), samesite="Lax")
    return response


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
    "checking": gettext_lazy("Checking your files…"),
    "uploading": gettext_lazy("Uploading. Keep this page open until every file is done."),
    "verifying": gettext_lazy("Checking the file…"),
    "released": gettext_lazy("Every file arrived and was checked."),
    "allVerified": gettext_lazy("Every file arrived and was checked. Add more, or press Finish when you are done."),
    "someFailed": gettext_lazy("Some files did not arrive. Retry them, or remove them and finish with the rest."),
    "refused": gettext_lazy("%(name)s was refused after upload (%(reason)s). Add it again to retry."),
    "addFiles": gettext_lazy("Add at least one file."),
    "network": gettext_lazy("The server could not be reached. Check your connection and try again."),
    "resume": gettext_lazy(
        "Add these files again to finish uploading them (parts already uploaded are not sent again):"
    ),
    "notInTransfer": gettext_lazy("%(name)s is not one of the files being uploaded. Finish these first."),
    "fixFields": gettext_lazy("Please check your files."),
    "blocked": gettext_lazy("this type of file may not be sent."),
    "notAllowed": gettext_lazy("this type of file was not asked for."),
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
        "partPlan": policy.part_plan(),
        "files": [{"fileId": u.file_id, "name": u.name, "size": u.size, "state": u.state} for u in unfinished],
        "strings": _GUEST_UPLOADER_STRINGS,
        "uppyStrings": UPPY_STRINGS,
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
