"""Refusals of the transfers app. Views translate them to 4xx answers; `code` says what went wrong, `message`
says it to the person (translated), `status` is the HTTP status a view should answer with."""

from django.utils.translation import gettext_lazy as _

# code → (HTTP status, default message)
MESSAGES = {
    "not_found": (404, _("This transfer does not exist or is no longer available.")),
    "invalid": (400, _("The request is not valid.")),
    "recipient_invalid": (400, _("A recipient address is not a valid e-mail address.")),
    "recipient_domain_refused": (400, _("Files may not be sent to this domain.")),
    "recipients_missing": (400, _("Add at least one recipient.")),
    "too_many_recipients": (400, _("Too many recipients.")),
    "files_missing": (400, _("Add at least one file.")),
    "too_many_files": (400, _("Too many files in one transfer.")),
    "file_too_large": (400, _("A file is larger than allowed.")),
    "file_empty": (400, _("Empty files cannot be sent.")),
    "transfer_too_large": (400, _("The files together are larger than allowed for one transfer.")),
    # The sender's bytes in flight would pass their allowance (transfers.services.quota says how far).
    "quota_exceeded": (409, _("This would pass your allowance for files being kept.")),
    "file_name_invalid": (400, _("A file name is not valid.")),
    "extension_blocked": (400, _("This type of file may not be sent.")),
    "expiry_invalid": (400, _("The expiry is outside what is allowed.")),
    "download_limit_invalid": (400, _("The download limit is outside what is allowed.")),
    "subject_invalid": (400, _("The subject is not valid.")),
    "on_legal_hold": (
        409,
        _("This transfer is on legal hold: its files cannot be deleted until compliance releases the hold."),
    ),
    "state_conflict": (409, _("This cannot be done in the transfer's current state.")),
    "upload_incomplete": (409, _("The upload is not complete.")),
    "parts_invalid": (400, _("The parts requested are not part of this upload.")),
    "rate_limited": (429, _("Too many attempts. Please wait a minute and try again.")),
    "locked": (403, _("Access is locked after too many wrong codes. Ask the sender to send the link again.")),
    "code_wrong": (400, _("The code is not correct.")),
    "code_expired": (400, _("The code has expired. Request a new one.")),
    "access_expired": (403, _("Your access has ended. Open the link from the mail again.")),
    "download_limit_reached": (403, _("The download limit for this file has been reached.")),
    # Upload requests
    "max_files_invalid": (400, _("The number of files is outside what is allowed.")),
    "max_file_bytes_invalid": (400, _("The file size limit is outside what is allowed.")),
    "max_total_bytes_invalid": (400, _("The total size limit is outside what is allowed.")),
    "extensions_invalid": (400, _("The allowed file types are not valid.")),
    "keep_days_invalid": (400, _("The time received files are kept is outside what is allowed.")),
    "extension_not_allowed": (400, _("This type of file was not asked for.")),
    "replies_closed": (409, _("Replies to this transfer are closed.")),
    # Upload checksums (issue 15): a SHA-256 or CRC the browser sent is not one.
    "checksum_invalid": (400, _("A file's checksum is not valid. Upload the file again.")),
    # The release gate (issue 16): mis-send prevention and supervisor approval.
    "recipients_unconfirmed": (400, _("Confirm each recipient before sending.")),
    "already_sent": (409, _("Too late to cancel: the mails have gone out.")),
    "approver_missing": (
        409,
        _("This transfer needs an approval, but no approver is known for you. Ask your administrator."),
    ),
    "comment_required": (400, _("Say why you reject it: the sender reads your comment.")),
    "delegate_invalid": (400, _("The delegate's address is not valid.")),
    "delegation_period_invalid": (400, _("The delegation's period is not valid.")),
    # AWS did not answer, or answered "slow down", after botocore's retries: nothing the person did was wrong.
    "unavailable": (503, _("The service is busy. Nothing was lost; please try again in a minute.")),
    "mail_delayed": (503, _("We could not send the mail just now. Please try again in a few minutes.")),
}


class TransferError(Exception):
    """A refusal with a stable code, a user-facing message and the HTTP status a view answers with."""

    def __init__(self, code: str, message: str = "", **params) -> None:
        status, default = MESSAGES.get(code, (400, code))
        self.code = code
        self.status = status
        self.params = params
        self.message = str(message or default)
        super().__init__(f"{code}: {self.message}")
