"""Writes for transfers (and, in issue 5, upload requests). Each service is one verb on one noun,
keyword-only, returns a frozen dataclass, records its audit events and raises TransferError on refusal.

    sending.py   transfer_create, transfer_release, transfer_revoke, transfer_extend, recipient_resend
    uploads.py   upload_authorize, upload_parts_sign, upload_parts_list, upload_complete_multipart,
                 upload_cancel, upload_done, file_verify, upload_object_noticed
    guests.py    guest_link_open, guest_code_send, guest_code_verify, guest_download_url
    deletion.py  transfer_delete_now, transfer_delete_for_compliance, transfer_hold_set, transfer_hold_release
    expiry.py    expiry_sweep
"""

from transfers.services.deletion import (
    HoldChanged,
    Receipt,
    TransferDeleted,
    transfer_delete_for_compliance,
    transfer_delete_now,
    transfer_hold_release,
    transfer_hold_set,
)
from transfers.services.expiry import SweepDone, expiry_sweep
from transfers.services.guests import (
    AccessGranted,
    CodeSent,
    DownloadIssued,
    GuestLink,
    guest_code_send,
    guest_code_verify,
    guest_download_url,
    guest_link_open,
)
from transfers.services.sending import (
    FileCreated,
    LinkResent,
    SenderIdentity,
    TransferCreated,
    TransferExtended,
    TransferReleased,
    TransferRevoked,
    recipient_resend,
    transfer_create,
    transfer_extend,
    transfer_release,
    transfer_revoke,
)
from transfers.services.uploads import (
    FileVerified,
    PartDone,
    PartsSigned,
    UploadAuthorized,
    file_verify,
    upload_authorize,
    upload_cancel,
    upload_complete_multipart,
    upload_done,
    upload_object_noticed,
    upload_parts_list,
    upload_parts_sign,
)

__all__ = [
    "AccessGranted",
    "CodeSent",
    "DownloadIssued",
    "FileCreated",
    "FileVerified",
    "GuestLink",
    "HoldChanged",
    "LinkResent",
    "PartDone",
    "PartsSigned",
    "Receipt",
    "SenderIdentity",
    "SweepDone",
    "TransferCreated",
    "TransferDeleted",
    "TransferExtended",
    "TransferReleased",
    "TransferRevoked",
    "UploadAuthorized",
    "expiry_sweep",
    "file_verify",
    "guest_code_send",
    "guest_code_verify",
    "guest_download_url",
    "guest_link_open",
    "recipient_resend",
    "transfer_create",
    "transfer_delete_for_compliance",
    "transfer_delete_now",
    "transfer_extend",
    "transfer_hold_release",
    "transfer_hold_set",
    "transfer_release",
    "transfer_revoke",
    "upload_authorize",
    "upload_cancel",
    "upload_complete_multipart",
    "upload_done",
    "upload_object_noticed",
    "upload_parts_list",
    "upload_parts_sign",
]
