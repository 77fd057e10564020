"""Writes for transfers (and, in issue 5, upload requests). Each service is one verb on one noun,
keyword-only, returns a frozen dataclass, records its audit events and raises TransferError on refusal.

    sending.py   transfer_create, transfer_release, transfer_revoke, transfer_extend, recipient_resend
    uploads.py   upload_authorize, upload_parts_sign, upload_parts_list, upload_complete_multipart,
                 upload_cancel, upload_done, file_verify, upload_object_noticed
    guests.py    guest_link_open, guest_code_send, guest_code_verify, guest_download_url
    deletion.py  transfer_delete_now, transfer_delete_for_compliance, transfer_hold_set, transfer_hold_release
    expiry.py    expiry_sweep
    requests.py  request_create, reply_request_create, reply_open, request_files_declare, request_finish,
                 request_close, received_download_url

The package loads a submodule when one of its names is first used (PEP 562): a view module that imports
`transfers.services` at the top costs a cold start nothing until its view runs.
"""

import importlib
from typing import TYPE_CHECKING

# Each public name and the submodule that defines it.
_SUBMODULE = {
    "AccessGranted": "guests",
    "CodeSent": "guests",
    "DownloadIssued": "guests",
    "FileCreated": "sending",
    "FileVerified": "uploads",
    "FilesDeclared": "requests",
    "GuestLink": "guests",
    "HoldChanged": "deletion",
    "LinkResent": "sending",
    "PartDone": "uploads",
    "PartsSigned": "uploads",
    "Receipt": "deletion",
    "ReceivedDownload": "requests",
    "RequestClosed": "requests",
    "RequestCreated": "requests",
    "RequestFinished": "requests",
    "SenderIdentity": "sending",
    "SweepDone": "expiry",
    "TransferCreated": "sending",
    "TransferDeleted": "deletion",
    "TransferExtended": "sending",
    "TransferReleased": "sending",
    "TransferRevoked": "sending",
    "UploadAuthorized": "uploads",
    "expiry_sweep": "expiry",
    "file_verify": "uploads",
    "guest_code_send": "guests",
    "guest_code_verify": "guests",
    "guest_download_url": "guests",
    "guest_link_open": "guests",
    "received_download_url": "requests",
    "recipient_resend": "sending",
    "reply_open": "requests",
    "request_close": "requests",
    "request_create": "requests",
    "request_files_declare": "requests",
    "request_finish": "requests",
    "transfer_create": "sending",
    "transfer_delete_for_compliance": "deletion",
    "transfer_delete_now": "deletion",
    "transfer_extend": "sending",
    "transfer_hold_release": "deletion",
    "transfer_hold_set": "deletion",
    "transfer_release": "sending",
    "transfer_revoke": "sending",
    "upload_authorize": "uploads",
    "upload_cancel": "uploads",
    "upload_complete_multipart": "uploads",
    "upload_done": "uploads",
    "upload_object_noticed": "uploads",
    "upload_parts_list": "uploads",
    "upload_parts_sign": "uploads",
}

__all__ = [
    "AccessGranted",
    "CodeSent",
    "DownloadIssued",
    "FileCreated",
    "FileVerified",
    "FilesDeclared",
    "GuestLink",
    "HoldChanged",
    "LinkResent",
    "PartDone",
    "PartsSigned",
    "Receipt",
    "ReceivedDownload",
    "RequestClosed",
    "RequestCreated",
    "RequestFinished",
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
    "received_download_url",
    "recipient_resend",
    "reply_open",
    "request_close",
    "request_create",
    "request_files_declare",
    "request_finish",
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

if TYPE_CHECKING:  # for type checkers and editors; at run time the names load on first use
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
    from transfers.services.requests import (
        FilesDeclared,
        ReceivedDownload,
        RequestClosed,
        RequestCreated,
        RequestFinished,
        received_download_url,
        reply_open,
        request_close,
        request_create,
        request_files_declare,
        request_finish,
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


def __getattr__(name: str):
    try:
        submodule = _SUBMODULE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULE})
