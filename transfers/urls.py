from django.urls import path

from fxfer.lazyviews import lazy


def _view(name: str):
    """transfers.views.<name>, imported when a request first reaches it (fxfer.lazyviews)."""
    return lazy(f"transfers.views.{name}")


app_name = "transfers"

_file = "transfers/<str:transfer_id>/files/<str:file_id>/"
_guest_file = "guest/upload/files/<str:file_id>/"

urlpatterns = [
    # The sender (employees)
    path("transfers/", _view("sender.transfer_list"), name="list"),
    path("transfers/new", _view("sender.transfer_new"), name="new"),
    path("transfers/<str:transfer_id>/", _view("sender.transfer_detail"), name="detail"),
    path("transfers/<str:transfer_id>/revoke", _view("sender.transfer_revoke"), name="revoke"),
    path("transfers/<str:transfer_id>/cancel-send", _view("sender.transfer_send_cancel"), name="send_cancel"),
    path("transfers/<str:transfer_id>/extend", _view("sender.transfer_extend"), name="extend"),
    path("transfers/<str:transfer_id>/delete", _view("sender.transfer_delete"), name="delete"),
    path(
        "transfers/<str:transfer_id>/recipients/<str:recipient_id>/resend",
        _view("sender.recipient_resend"),
        name="resend",
    ),
    # Supervisor approval (employees: approvers and their delegates)
    path("approvals/", _view("approvals.approval_list"), name="approvals"),
    path("approvals/delegation", _view("approvals.delegation"), name="approval_delegation"),
    path("approvals/<str:transfer_id>/", _view("approvals.approval_detail"), name="approval"),
    path(
        "approvals/<str:transfer_id>/files/<str:file_id>/download",
        _view("approvals.approval_download"),
        name="approval_download",
    ),
    # The uploader's JSON endpoints, per file
    path(f"{_file}authorize", _view("uploads.upload_authorize"), name="upload_authorize"),
    path(f"{_file}parts", _view("uploads.upload_parts_sign"), name="upload_parts"),
    path(f"{_file}parts/list", _view("uploads.upload_parts_list"), name="upload_parts_list"),
    path(f"{_file}complete", _view("uploads.upload_complete"), name="upload_complete"),
    path(f"{_file}done", _view("uploads.upload_done"), name="upload_done"),
    path(f"{_file}cancel", _view("uploads.upload_cancel"), name="upload_cancel"),
    # Upload requests (employees)
    path("requests/", _view("requests.request_list"), name="request_list"),
    path("requests/new", _view("requests.request_new"), name="request_new"),
    path("requests/<str:request_id>/", _view("requests.request_detail"), name="request_detail"),
    path("requests/<str:request_id>/close", _view("requests.request_close"), name="request_close"),
    path("requests/<str:request_id>/delete", _view("requests.request_delete"), name="request_delete"),
    path(
        "requests/<str:request_id>/files/<str:file_id>/download",
        _view("requests.request_download"),
        name="request_download",
    ),
    path(
        "requests/<str:request_id>/recipients/<str:recipient_id>/resend",
        _view("requests.request_resend"),
        name="request_resend",
    ),
    # Guests
    # The mailed link only moves its token into a cookie; every page after it is token-free (_view("guests.link")).
    # The code URLs of earlier versions still carried the token: they do the same and nothing else.
    path("t/<str:token>", _view("guests.link"), name="guest_link_token"),
    path("t/<str:token>/code", _view("guests.link")),
    path("t/<str:token>/verify", _view("guests.link")),
    path("guest/link/<str:link_id>", _view("guests.link_page"), name="guest_link"),
    path("guest/link/<str:link_id>/code", _view("guests.code_send"), name="guest_code_send"),
    path("guest/link/<str:link_id>/verify", _view("guests.code_enter"), name="guest_code"),
    path("guest/files/", _view("guests.files"), name="guest_files"),
    path("guest/files/<str:file_id>/download", _view("guests.download"), name="guest_download"),
    path("guest/reply", _view("guests.reply"), name="guest_reply"),
    path("guest/upload/", _view("guests.upload_page"), name="guest_upload"),
    path("guest/upload/files", _view("guests.upload_files"), name="guest_upload_files"),
    path("guest/upload/finish", _view("guests.finish"), name="guest_upload_finish"),
    path(f"{_guest_file}authorize", _view("uploads.guest_upload_authorize"), name="guest_upload_authorize"),
    path(f"{_guest_file}parts", _view("uploads.guest_upload_parts_sign"), name="guest_upload_parts"),
    path(f"{_guest_file}parts/list", _view("uploads.guest_upload_parts_list"), name="guest_upload_parts_list"),
    path(f"{_guest_file}complete", _view("uploads.guest_upload_complete"), name="guest_upload_complete"),
    path(f"{_guest_file}done", _view("uploads.guest_upload_done"), name="guest_upload_done"),
    path(f"{_guest_file}cancel", _view("uploads.guest_upload_cancel"), name="guest_upload_cancel"),
]
