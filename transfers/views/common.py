"""What the transfer views share: who may use them, how a refusal becomes a response, the client's address."""

import functools
import json

from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from fxfer.i18n import local_time  # noqa: F401  (the views' one time format, re-exported)
from transfers.errors import TransferError
from transfers.services.access import access_denied_record
from transfers.services.common import AccessDenied


def client(request) -> dict:
    """The ip and user agent the services record in the audit trail."""
    return {"ip": request.META.get("REMOTE_ADDR"), "user_agent": request.META.get("HTTP_USER_AGENT")}


def employee_required(view):
    """Pages for employees: others signed in get a clear 403 page; anonymous people go to sign in."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_employee:
            return render(request, "transfers/employees_only.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped


def employee_json(view):
    """JSON endpoints for employees: refusals are JSON too, so the uploader can say what happened."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return json_error("signed_out", _("Your session has ended. Sign in again to continue."), 401)
        if not request.user.is_employee:
            return json_error("forbidden", _("Only employees may send files."), 403)
        try:
            return view(request, *args, **kwargs)
        except TransferError as error:
            denied(request, error)
            return json_error(error.code, error.message, error.status, **error.params)

    return wrapped


def json_error(code: str, message: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({"error": code, "message": str(message), **extra}, status=status)


def json_body(request) -> dict:
    """The request's JSON object, or an empty dict (the form then says what is missing)."""
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


GUEST_DOWNLOAD_SESSION = "guest_access"  # a transfer's recipient: see and download its files
GUEST_UPLOAD_SESSION = "guest_upload"  # a request's guest: upload into it


def guest_scope(request, session_key: str) -> dict:
    """The ids and grant this guest session holds, as the guest services take them; nothing from the request
    itself, so a guest cannot name another transfer, request or recipient."""
    held = request.session.get(session_key)
    if not isinstance(held, dict):
        raise TransferError("access_expired")
    return {
        "transfer_id": str(held.get("transfer_id", "")),
        "recipient_id": str(held.get("recipient_id", "")),
        "grant": str(held.get("grant", "")),
    }


def guest_upload_scope(request) -> dict:
    return guest_scope(request, GUEST_UPLOAD_SESSION)


def error_page(request, error: TransferError, *, guest: bool = False):
    """A refusal as a page with the error's status; every `not_found` looks the same."""
    if error.code == "not_found":
        return render(request, "transfers/guest/not_found.html" if guest else "transfers/not_found.html", status=404)
    if error.code == "locked":
        return render(request, "transfers/guest/locked.html", status=error.status)
    return render(request, "transfers/error.html", {"error": error, "guest": guest}, status=error.status)


def sender_page(view):
    """Employee pages whose service refusals become pages (every `not_found` the same 404)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except TransferError as error:
            denied(request, error)
            return error_page(request, error)

    return employee_required(wrapped)


def denied(request, error: TransferError) -> None:
    """An employee refused another's transfer or request (or an id that does not exist): record it for
    compliance. The answer stays the same 404 whatever happens here."""
    if isinstance(error, AccessDenied):
        match = request.resolver_match
        access_denied_record(
            actor_id=request.user.id,
            transfer_id=error.transfer_id,
            exists=error.exists,
            route=match.url_name if match else "",
            method=request.method,
            **client(request),
        )
