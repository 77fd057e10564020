"""Uppy's own texts (its Dashboard: drop zone, per-file buttons, progress) in the page's language, as Uppy's
`locale.strings`. The msgids are Uppy's English strings, so an English page shows exactly Uppy's defaults.
%{name} is Uppy's placeholder syntax (not Python's). Uppy picks a plural form with English rules (1 → 0,
else 1): each counted text has both English forms; Japanese gives them the same translation."""

from django.utils.translation import gettext_lazy as _


def _counted(one, many) -> dict:
    return {"0": one, "1": many}


UPPY_STRINGS = {
    "dropPasteFiles": _("Drop files here or %{browseFiles}"),
    "browseFiles": _("browse files"),
    "dropHint": _("Drop your files here"),
    "addMore": _("Add more"),
    "addMoreFiles": _("Add more files"),
    "back": _("Back"),
    "done": _("Done"),
    "cancel": _("Cancel"),
    "cancelUpload": _("Cancel upload"),
    "complete": _("Complete"),
    "error": _("Error"),
    "retry": _("Retry"),
    "retryUpload": _("Retry upload"),
    "pauseUpload": _("Pause upload"),
    "resumeUpload": _("Resume upload"),
    "removeFile": _("Remove file"),
    "uploadComplete": _("Upload complete"),
    "uploadFailed": _("Upload failed"),
    "uploadPaused": _("Upload paused"),
    "failedToUpload": _("Failed to upload %{file}"),
    "showErrorDetails": _("Show error details"),
    "exceedsSize": _("%{file} exceeds maximum allowed size of %{size}"),
    "noDuplicates": _("Cannot add the duplicate file '%{fileName}', it already exists"),
    "dataUploadedOfTotal": _("%{complete} of %{total}"),
    "sessionRestored": _("Session restored"),
    "recoveredAllFiles": _("We restored all files. You can now resume the upload."),
    "uploadStalled": _("Upload has not made any progress for %{seconds} seconds. You may want to retry it."),
    "myDevice": _("My Device"),
    "xFilesSelected": _counted(_("%{smart_count} file selected"), _("%{smart_count} files selected")),
    "uploadingXFiles": _counted(_("Uploading %{smart_count} file"), _("Uploading %{smart_count} files")),
    "xMoreFilesAdded": _counted(_("%{smart_count} more file added"), _("%{smart_count} more files added")),
    "filesUploadedOfTotal": _counted(
        _("%{complete} of %{smart_count} file uploaded"), _("%{complete} of %{smart_count} files uploaded")
    ),
    "youCanOnlyUploadX": _counted(
        _("You can only upload %{smart_count} file"), _("You can only upload %{smart_count} files")
    ),
}
