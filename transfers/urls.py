from django.urls import path

from transfers.views import approvals, guests, requests, sender, uploads

app_name = "transfers"

_file = "transfers/<str:transfer_id>/files/<str:file_id>/"
_guest_file = "guest/upload/files/<str:file_id>/"

urlpatterns = [
    # The sender (employees)
    path("transfers/", sender.transfer_list, name="list"),
    path("transfers/new", sender.transfer_new, name="new"),
    path("transfers/<str:transfer_id>/", sender.transfer_detail, name="detail"),
    path("transfers/<str:transfer_id>/revoke", sender.transfer_revoke, name="revoke"),
    path("transfers/<str:transfer_id>/cancel-send", sender.transfer_send_cancel, name="send_cancel"),
    path("transfers/<str:transfer_id>/extend", sender.transfer_extend, name="extend"),
    path("transfers/<str:transfer_id>/delete", sender.transfer_delete, name="delete"),
    path("transfers/<str:transfer_id>/recipients/<str:recipient_id>/resend", sender.recipient_resend, name="resend"),
    # Supervisor approval (employees: approvers and their delegates)
    path("approvals/", approvals.approval_list, name="approvals"),
    path("approvals/delegation", approvals.delegation, name="approval_delegation"),
    path("approvals/<str:transfer_id>/", approvals.approval_detail, name="approval"),
    path(
        "approvals/<str:transfer_id>/files/<str:file_id>/download",
        approvals.approval_download,
        name="approval_download",
    ),
    # The uploader's JSON endpoints, per file
    path(f"{_file}authorize", uploads.upload_authorize, name="upload_authorize"),
    path(f"{_file}parts", uploads.upload_parts_sign, name="upload_parts"),
    path(f"{_file}parts/list", uploads.upload_parts_list, name="upload_parts_list"),
    path(f"{_file}complete", uploads.upload_complete, name="upload_complete"),
    path(f"{_file}done", uploads.upload_done, name="upload_done"),
    path(f"{_file}cancel", uploads.upload_cancel, name="upload_cancel"),
    # Upload requests (employees)
    path("requests/", requests.request_list, name="request_list"),
    path("requests/new", requests.request_new, name="request_new"),
    path("requests/<str:request_id>/", requests.request_detail, name="request_detail"),
    path("requests/<str:request_id>/close", requests.request_close, name="request_close"),
    path("requests/<str:request_id>/delete", requests.request_delete, name="request_delete"),
    path("requests/<str:request_id>/files/<str:file_id>/download", requests.request_download, name="request_download"),
    path(
        "requests/<str:request_id>/recipients/<str:recipient_id>/resend",
        requests.request_resend,
        name="request_resend",
    ),
    # Guests
    # The mailed link only moves its token into a cookie; every page after it is token-free (guests.link).
    # The code URLs of earlier versions still carried the token: they do the same and nothing else.
    path("t/<str:token>", guests.link, name="guest_link_token"),
    path("t/<str:token>/code", guests.link),
    path("t/<str:token>/verify", guests.link),
    path("guest/link/<str:link_id>", guests.link_page, name="guest_link"),
    path("guest/link/<str:link_id>/code", guests.code_send, name="guest_code_send"),
    path("guest/link/<str:link_id>/verify", guests.code_enter, name="guest_code"),
    path("guest/files/", guests.files, name="guest_files"),
    path("guest/files/<str:file_id>/download", guests.download, name="guest_download"),
    path("guest/reply", guests.reply, name="guest_reply"),
    path("guest/upload/", guests.upload_page, name="guest_upload"),
    path("guest/upload/files", guests.upload_files, name="guest_upload_files"),
    path("guest/upload/finish", guests.finish, name="guest_upload_finish"),
    path(f"{_guest_file}authorize", uploads.guest_upload_authorize, name="guest_upload_authorize"),
    path(f"{_guest_file}parts", uploads.guest_upload_parts_sign, name="guest_upload_parts"),
    path(f"{_guest_file}parts/list", uploads.guest_upload_parts_list, name="guest_upload_parts_list"),
    path(f"{_guest_file}complete", uploads.guest_upload_complete, name="guest_upload_complete"),
    path(f"{_guest_file}done", uploads.guest_upload_done, name="guest_upload_done"),
    path(f"{_guest_file}cancel", uploads.guest_upload_cancel, name="guest_upload_cancel"),
]
