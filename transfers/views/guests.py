"""The guest's pages. The link's page (GET) only looks; everything that uses something up (a code, a
download) is a POST with CSRF, so mail scanners that prefetch links change nothing. After a right code the
guest session holds only the recipient's and transfer's ids and the grant, and every page checks them again
through the services."""

import functools

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from transfers import selectors, services
from transfers.errors import TransferError
from transfers.forms import CodeForm
from transfers.views.common import client, error_page

SESSION_KEY = "guest_access"


def guest_page(view):
    """Refusals become the guest's pages: one 404 for every unknown, foreign, revoked or expired link."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except TransferError as error:
            return error_page(request, error, guest=True)

    return never_cache(wrapped)


def _access(request) -> dict:
    """The ids and grant this session holds; nothing from the request itself."""
    held = request.session.get(SESSION_KEY)
    if not isinstance(held, dict):
        raise TransferError("access_expired")
    return {
        "transfer_id": held.get("transfer_id", ""),
        "recipient_id": held.get("recipient_id", ""),
        "grant": held.get("grant", ""),
    }


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
        if error.code != "rate_limited":
            raise
        found = services.guest_link_open(token=token, **client(request))
        return render(request, "transfers/guest/link.html", {"link": found, "token": token, "error": error}, status=429)
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
    _open_session(request, granted)
    return HttpResponseRedirect(reverse("transfers:guest_files"), status=303)


def _open_session(request, granted: services.AccessGranted) -> None:
    request.session.cycle_key()  # a new session key whenever access is granted
    request.session[SESSION_KEY] = {
        "transfer_id": granted.transfer_id,
        "recipient_id": granted.recipient_id,
        "grant": granted.grant,
    }
    request.session.set_expiry(granted.expires_at)


@guest_page
@require_safe
def files(request):
    """The files of the transfer this session may see: name, size, checksum, a Download button each."""
    shown = selectors.guest_files(**_access(request))
    return render(request, "transfers/guest/files.html", {"shown": shown})


@guest_page
@require_POST
def download(request, file_id: str):
    """Use one download of the file and send the browser to a short-lived presigned GET (303)."""
    issued = services.guest_download_url(**_access(request), file_id=file_id, **client(request))
    return HttpResponseRedirect(issued.url, status=303)
