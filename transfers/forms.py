"""Forms of the transfer pages. They check shape only (types, required fields); the policy (sizes,
extensions, domains, limits) is the services' job, so it is enforced the same way whatever calls them."""

import re
from datetime import datetime, timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from transfers.policy import FileDeclared, RequestLimits, request_limits_default

_ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")
_EXTENSION_SEPARATORS = re.compile(r"[\s,;]+")
MiB = 1024**2
GiB = 1024**3
# The units a size limit is entered in, as the pages show sizes (filesizeformat: 1 GB = 1024 MB).
SIZE_UNITS = {"MB": MiB, "GB": GiB}


def size_amount_field(label, *, required: bool = True) -> forms.DecimalField:
    """How much of a size limit: a number (1.5 allowed), its unit chosen beside it (`size_unit_field`)."""
    field = forms.DecimalField(
        label=label, min_value=Decimal("0.01"), max_digits=10, decimal_places=2, required=required
    )
    field.widget.attrs["step"] = "any"
    return field


def size_unit_field() -> forms.ChoiceField:
    return forms.ChoiceField(label=_("Unit"), choices=[(u, u) for u in SIZE_UNITS], initial="MB", required=False)


def size_in_bytes(data: dict, name: str) -> int | None:
    """The size a limit's two fields give (`name` and `name_unit`), in bytes; None when no amount was given."""
    amount = data.get(name)
    if amount is None:
        return None
    return max(1, int(amount * SIZE_UNITS[data.get(f"{name}_unit") or "MB"]))


def size_initial(size: int) -> tuple[Decimal, str]:
    """A size in bytes as the (amount, unit) the inputs start from: whole GB when it is, else MB."""
    if size >= GiB and size % GiB == 0:
        return Decimal(size // GiB), "GB"
    return (Decimal(size) / MiB).quantize(Decimal("0.01")).normalize(), "MB"


def mail_language_field() -> forms.ChoiceField:
    """The language of the recipients' mails (and the pages their link opens); automatic by default."""
    return forms.ChoiceField(
        label=_("Language of their mails"),
        required=False,
        # Each language named in itself (English, 日本語): the sender picks what the recipient reads.
        choices=[("", _("Automatic (Japanese for .jp addresses)"))]
        + [(code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES],
        help_text=_("Their pages open in the same language; they can switch it there."),
    )


class TransferForm(forms.Form):
    """The New transfer form; the uploader posts it as JSON together with the files it is about to send."""

    recipients = forms.CharField(
        label=_("Recipients"),
        help_text=_("One or more e-mail addresses, separated by commas or new lines. Each gets their own link."),
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
    )
    subject = forms.CharField(label=_("Subject"), required=False, max_length=200)
    message = forms.CharField(
        label=_("Message"), required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4})
    )
    mail_language = mail_language_field()
    # The bound only keeps the number a date can hold; the service says what the policy allows.
    expiry_amount = forms.IntegerField(label=_("Available for"), min_value=1, max_value=100_000, initial=7)
    expiry_unit = forms.ChoiceField(
        label=_("Unit"), choices=[("days", _("days")), ("hours", _("hours"))], initial="days"
    )
    download_limit = forms.IntegerField(
        label=_("Downloads per recipient"),
        help_text=_("How many times each recipient may download each file."),
        min_value=1,
        initial=3,
    )
    notify_on_download = forms.BooleanField(label=_("Tell me about each download"), required=False, initial=True)
    allow_replies = forms.BooleanField(
        label=_("Let recipients send files back"),
        help_text=_("Each recipient can reply with files from their download page; you find them on this transfer."),
        required=False,
    )
    # What each recipient may send back (shown once "Let recipients send files back" is ticked): the Request
    # files form's limits, with the same defaults; the service checks them against the site's.
    reply_max_files = forms.IntegerField(label=_("Files per person, at most"), min_value=1, required=False)
    reply_max_file_size = size_amount_field(_("Size of each file, at most"), required=False)
    reply_max_file_size_unit = size_unit_field()
    reply_max_total_size = size_amount_field(_("All files of one person, at most"), required=False)
    reply_max_total_size_unit = size_unit_field()
    reply_allowed_extensions = forms.CharField(
        label=_("Only these file types"),
        required=False,
        max_length=1000,
        help_text=_("For example: pdf, xlsx, zip. Leave empty to accept any type that is not blocked."),
    )
    files = forms.JSONField(required=False, widget=forms.HiddenInput)
    # The addresses the sender ticked in the confirmation dialog (static/js/confirm.js); the service checks
    # them against the recipients the mis-send policy asks to confirm.
    confirmed_recipients = forms.JSONField(required=False, widget=forms.HiddenInput)

    _REPLY_NUMBERS = ("reply_max_files", "reply_max_file_size", "reply_max_total_size")
    _REPLY_UNITS = ("reply_max_file_size_unit", "reply_max_total_size_unit")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expiry_amount"].initial = settings.FXFER_DEFAULT_EXPIRY_DAYS
        self.fields["download_limit"].max_value = settings.FXFER_MAX_DOWNLOAD_LIMIT
        self.fields["download_limit"].widget.attrs["max"] = settings.FXFER_MAX_DOWNLOAD_LIMIT
        limit_fields(
            self.fields,
            max_files="reply_max_files",
            max_file_size="reply_max_file_size",
            max_total_size="reply_max_total_size",
        )

    def clean_recipients(self) -> list[str]:
        return [a for a in _ADDRESS_SEPARATORS.split(self.cleaned_data["recipients"]) if a]

    def clean_confirmed_recipients(self) -> list[str]:
        confirmed = self.cleaned_data.get("confirmed_recipients")
        if confirmed is None:
            return []
        if not isinstance(confirmed, list) or not all(isinstance(a, str) for a in confirmed):
            raise forms.ValidationError(_("Confirm each recipient before sending."))
        return confirmed

    def clean_files(self) -> list[FileDeclared]:
        declared = declared_files(self.cleaned_data.get("files") or [])
        if not declared:
            # Missing like a required field, so an empty form names every missing field at once (the service
            # refuses an empty list too, with the same words).
            raise forms.ValidationError(_("Add at least one file."))
        return declared

    def clean(self):
        data = super().clean()
        if not data.get("allow_replies"):
            # The reply limits are hidden while replies are off: nothing in them can be wrong then.
            for name in (*self._REPLY_NUMBERS, *self._REPLY_UNITS, "reply_allowed_extensions"):
                self._errors.pop(name, None)
                data.pop(name, None)
            return data
        # A limit the page sent empty is a mistake to point at; one a client did not send at all takes the
        # default (what the page shows before anyone changes it).
        for name in self._REPLY_NUMBERS:
            if name in self.data and data.get(name) is None and name not in self._errors:
                self.add_error(name, forms.Field.default_error_messages["required"])
        size_units_checked(self, ("reply_max_file_size", "reply_max_total_size"))
        return data

    def reply_limits(self) -> RequestLimits | None:
        """The limits each recipient's reply may use, as the sender chose them (unchecked: the service checks),
        the defaults for any not given; None without replies."""
        data = self.cleaned_data
        if not data["allow_replies"]:
            return None
        default = request_limits_default()
        return RequestLimits(
            max_files=data["reply_max_files"] or default.max_files,
            max_file_bytes=size_in_bytes(data, "reply_max_file_size") or default.max_file_bytes,
            max_total_bytes=size_in_bytes(data, "reply_max_total_size") or default.max_total_bytes,
            allowed_extensions=tuple(e for e in _EXTENSION_SEPARATORS.split(data["reply_allowed_extensions"]) if e),
        )

    def service_arguments(self) -> dict:
        """The cleaned values as transfer_create's keyword arguments."""
        data = self.cleaned_data
        return {
            "recipients": data["recipients"],
            "files": data["files"],
            "subject": data["subject"],
            "message": data["message"],
            "expires_in": timedelta(**{data["expiry_unit"]: data["expiry_amount"]}),
            "download_limit": data["download_limit"],
            "notify_on_download": data["notify_on_download"],
            "allow_replies": data["allow_replies"],
            "reply_limits": self.reply_limits(),
            "mail_language": data["mail_language"] or None,
            "confirmed_recipients": data["confirmed_recipients"],
        }


def limit_fields(fields: dict, *, max_files: str, max_file_size: str, max_total_size: str) -> None:
    """Give a form's per-guest limit fields the request defaults as initial values (sizes in whole GB or MB),
    and the file count the site's maximum as the input's `max` (a hint for the browser; the service decides)."""
    default = request_limits_default()
    fields[max_files].initial = max(1, default.max_files)
    fields[max_files].widget.attrs["max"] = max(1, settings.FXFER_MAX_FILES)
    for name, size in ((max_file_size, default.max_file_bytes), (max_total_size, default.max_total_bytes)):
        fields[name].initial, fields[f"{name}_unit"].initial = size_initial(max(1, size))


def size_units_checked(form: forms.Form, names) -> None:
    """A size's unit is checked at its amount, where the page shows the error: an unknown unit, or an amount
    given without one (ambiguous; the page always sends both)."""
    for name in names:
        unit = f"{name}_unit"
        if unit in form.errors or (form.cleaned_data.get(name) is not None and not form.cleaned_data.get(unit)):
            form.errors.pop(unit, None)
            form.add_error(name, _("Choose MB or GB."))


class RequestForm(forms.Form):
    """The Request files form: who is asked, until when, the limits for each of them, how long files stay."""

    recipients = forms.CharField(
        label=_("Ask these people"),
        help_text=_("One or more e-mail addresses, separated by commas or new lines. Each gets their own link."),
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
    )
    subject = forms.CharField(label=_("Subject"), required=False, max_length=200)
    message = forms.CharField(
        label=_("Message"),
        required=False,
        max_length=5000,
        help_text=_("What you need from them. It is in the mail and on their upload page."),
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    mail_language = mail_language_field()
    closes_amount = forms.IntegerField(label=_("Open for"), min_value=1, max_value=100_000, initial=7)
    closes_unit = forms.ChoiceField(
        label=_("Unit"), choices=[("days", _("days")), ("hours", _("hours"))], initial="days"
    )
    keep_days = forms.IntegerField(
        label=_("Keep received files for (days)"),
        help_text=_("Counted from when the request closes; then the files are deleted."),
        min_value=1,
    )
    max_files = forms.IntegerField(label=_("Files per person, at most"), min_value=1)
    max_file_size = size_amount_field(_("Size of each file, at most"))
    max_file_size_unit = size_unit_field()
    max_total_size = size_amount_field(_("All files of one person, at most"))
    max_total_size_unit = size_unit_field()
    allowed_extensions = forms.CharField(
        label=_("Only these file types"),
        required=False,
        help_text=_("For example: pdf, xlsx, zip. Leave empty to accept any type that is not blocked."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["closes_amount"].initial = settings.FXFER_DEFAULT_EXPIRY_DAYS
        self.fields["keep_days"].initial = settings.FXFER_REQUEST_KEEP_DAYS
        self.fields["keep_days"].help_text = _(
            "Counted from when the request closes; then the files are deleted. Open and kept together: %(days)d "
            "days at most."
        ) % {"days": settings.FXFER_MAX_RETENTION_DAYS}
        self.fields["keep_days"].max_value = settings.FXFER_MAX_RETENTION_DAYS
        self.fields["keep_days"].widget.attrs["max"] = settings.FXFER_MAX_RETENTION_DAYS
        limit_fields(self.fields, max_files="max_files", max_file_size="max_file_size", max_total_size="max_total_size")

    def clean_recipients(self) -> list[str]:
        return [a for a in _ADDRESS_SEPARATORS.split(self.cleaned_data["recipients"]) if a]

    def clean(self):
        data = super().clean()
        size_units_checked(self, ("max_file_size", "max_total_size"))
        return data

    def service_arguments(self) -> dict:
        """The cleaned values as request_create's keyword arguments (the service checks the bounds)."""
        data = self.cleaned_data
        return {
            "recipients": data["recipients"],
            "subject": data["subject"],
            "message": data["message"],
            "closes_in": timedelta(**{data["closes_unit"]: data["closes_amount"]}),
            "keep_days": data["keep_days"],
            "max_files": data["max_files"],
            "max_file_bytes": size_in_bytes(data, "max_file_size"),
            "max_total_bytes": size_in_bytes(data, "max_total_size"),
            "allowed_extensions": [e for e in _EXTENSION_SEPARATORS.split(data["allowed_extensions"]) if e],
            "mail_language": data["mail_language"] or None,
        }


class FinishForm(forms.Form):
    """A guest's "finish", with an optional note for the employee."""

    note = forms.CharField(
        label=_("Note for the person who asked (optional)"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def declared_files(raw) -> list[FileDeclared]:
    """The uploader's list of files ([{name, size, type}]) as the services take it; the policy checks the rest."""
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise forms.ValidationError(_("The list of files is not valid."))
    try:
        return [
            FileDeclared(
                name=str(f["name"]),
                size=f["size"],
                content_type=str(f.get("type") or ""),
                sha256=str(f["sha256"]) if f.get("sha256") else None,
            )
            for f in raw
        ]
    except KeyError:
        raise forms.ValidationError(_("The list of files is not valid.")) from None


class ExtendForm(forms.Form):
    """The new expiry, one of the choices the transfer's page offers (the service checks the bounds)."""

    expires_at = forms.DateTimeField(input_formats=["%Y-%m-%dT%H:%M:%S%z"])

    def clean_expires_at(self) -> datetime:
        value = self.cleaned_data["expires_at"]
        if value.tzinfo is None:
            raise forms.ValidationError(_("Choose one of the offered dates."))
        return value


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("One-time code"),
        max_length=20,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": r"[0-9 ]*", "size": 8}
        ),
    )


def extension_choices(*, created_at: datetime, expires_at: datetime) -> list[datetime]:
    """New expiries to offer: a day, three days, a week... later than now's, up to the latest the policy
    allows (which is always offered last). Only real extensions: each is strictly later than the current expiry
    and within the policy. Empty when none is left (the page then says so instead of showing a form)."""
    from transfers.policy import max_expiry

    # Whole minutes: the page shows minutes and posts seconds, so a choice with seconds or microseconds would be
    # shown as the current expiry and posted as a time at or before it ("The expiry is outside what is allowed").
    latest = _whole_minute(created_at + max_expiry())
    candidates = [_whole_minute(expires_at + timedelta(days=d)) for d in (1, 3, 7, 14)]
    choices = [moment for moment in candidates if expires_at < moment < latest]
    return [*choices, latest] if expires_at < latest else choices


def _whole_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
