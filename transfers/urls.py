from django.urls import path

from transfers.views import guests, sender, uploads

app_name = "transfers"

_file = "transfers/<str:transfer_id>/files/<str:file_id>/"

urlpatterns = [
    # The sender (employees)
    path("transfers/", sender.transfer_list, name="list"),
    path("transfers/new", sender.transfer_new, name="new"),
    path("transfers/<str:transfer_id>/", sender.transfer_detail, name="detail"),
    path("transfers/<str:transfer_id>/revoke", sender.transfer_revoke, name="revoke"),
    path("transfers/<str:transfer_id>/extend", sender.transfer_extend, name="extend"),
    path("transfers/<str:transfer_id>/delete", sender.transfer_delete, name="delete"),
    path("transfers/<str:transfer_id>/recipients/<str:recipient_id>/resend", sender.recipient_resend, name="resend"),
    # The uploader's JSON endpoints, per file
    path(f"{_file}authorize", uploads.upload_authorize, name="upload_authorize"),
    path(f"{_file}parts", uploads.upload_parts_sign, name="upload_parts"),
    path(f"{_file}parts/list", uploads.upload_parts_list, name="upload_parts_list"),
    path(f"{_file}complete", uploads.upload_complete, name="upload_complete"),
    path(f"{_file}done", uploads.upload_done, name="upload_done"),
    path(f"{_file}cancel", uploads.upload_cancel, name="upload_cancel"),
    # Guests
    path("t/<str:token>", guests.link, name="guest_link"),
    path("t/<str:token>/code", guests.code_send, name="guest_code_send"),
    path("t/<str:token>/verify", guests.code_enter, name="guest_code"),
    path("guest/files/", guests.files, name="guest_files"),
    path("guest/files/<str:file_id>/download", guests.download, name="guest_download"),
]
