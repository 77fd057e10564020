"""The upload and sharing policy (values from settings, "Transfers" section), checked before any byte moves.

Each check raises TransferError with a code the uploader can show next to the field or file it concerns.
"""

import base64
import binascii
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from transfers.errors import TransferError

MiB = 1024**2
S3_MIN_PART_BYTES = 5 * MiB
S3_MAX_PART_BYTES = 5 * 1024**3
S3_MAX_PARTS = 10_000
MAX_NAME_CHARS = 255
MAX_SUBJECT_CHARS = 200
MAX_MESSAGE_CHARS = 5000
MIN_EXPIRY = timedelta(hours=1)

# Bidirectional overrides and invisible characters make "invoice\u202efdp.exe" look like "invoiceexe.pdf".
_DECEPTIVE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class FileDeclared:
    """What the browser says about a file before uploading it."""

    name: str
    size: int
    content_type: str = ""
    sha256: str | None = None  # base64 of the SHA-256 digest, when the browser computed one


def recipients_checked(addresses: list[str]) -> list[str]:
    """Trimmed, de-duplicated (case-insensitively) addresses; refuses bad syntax and refused domains."""
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in addresses:
        address = (raw or "").strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise TransferError(
                "recipient_invalid", _("%(address)s is not a valid e-mail address.") % {"address": address[:254]}
            ) from None
        local, _at, domain = address.rpartition("@")
        address = f"{local}@{domain.lower()}"
        if not recipient_domain_allowed(domain):
            raise TransferError(
                "recipient_domain_refused",
                _("Files may not be sent to %(domain)s.") % {"domain": domain.lower()},
                address=address,
            )
        if address.casefold() not in seen:
            seen.add(address.casefold())
            cleaned.append(address)
    if not cleaned:
        raise TransferError("recipients_missing")
    if len(cleaned) > settings.FXFER_MAX_RECIPIENTS:
        raise TransferError(
            "too_many_recipients",
            _("At most %(count)d recipients per transfer.") % {"count": settings.FXFER_MAX_RECIPIENTS},
        )
    return cleaned


def recipient_domain_allowed(domain: str) -> bool:
    """The deny list wins; an empty allow list allows every other domain. Entries cover their subdomains."""
    domain = domain.lower().rstrip(".")

    def listed(entries: list[str]) -> bool:
        return any(domain == e or domain.endswith("." + e) for e in (x.lower().lstrip("@.") for x in entries))

    if listed(settings.FXFER_RECIPIENT_DOMAINS_DENY):
        return False
    allow = settings.FXFER_RECIPIENT_DOMAINS_ALLOW
    return not allow or listed(allow)


def file_name_checked(name: str) -> str:
    """The name to show and to offer on download: its last path segment, without control characters.
    Refuses blocked extensions, also when hidden behind another one ("x.pdf.exe") or trailing dots."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    if not base or base in {".", ".."} or len(base) > MAX_NAME_CHARS:
        raise TransferError("file_name_invalid")
    if _DECEPTIVE.search(base) or any(unicodedata.category(ch) == "Cc" for ch in base):
        raise TransferError(
            "file_name_invalid", _("%(name)s contains characters that are not allowed.") % {"name": base}
        )
    # Windows drops trailing dots and spaces: "setup.exe. " runs as "setup.exe".
    effective = base.rstrip(". ").casefold()
    blocked = {ext.casefold().lstrip(".") for ext in settings.FXFER_BLOCKED_EXTENSIONS}
    extension = effective.rpartition(".")[2] if "." in effective else ""
    if extension in blocked:
        raise TransferError(
            "extension_blocked",
            _("Files of type .%(ext)s may not be sent (%(name)s).") % {"ext": extension, "name": base},
        )
    return base


def files_checked(files: list[FileDeclared]) -> list[FileDeclared]:
    """Count, per-file size, total size and names within policy; returns the files with cleaned names."""
    if not files:
        raise TransferError("files_missing")
    if len(files) > settings.FXFER_MAX_FILES:
        raise TransferError(
            "too_many_files", _("At most %(count)d files per transfer.") % {"count": settings.FXFER_MAX_FILES}
        )
    checked = []
    for declared in files:
        name = file_name_checked(declared.name)
        size = declared.size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TransferError("invalid", _("The size of %(name)s is not valid.") % {"name": name})
        if size == 0:
            raise TransferError("file_empty", _("%(name)s is empty.") % {"name": name})
        if size > settings.FXFER_MAX_FILE_BYTES:
            raise TransferError(
                "file_too_large",
                _("%(name)s is larger than the %(limit)s allowed per file.")
                % {"name": name, "limit": bytes_text(settings.FXFER_MAX_FILE_BYTES)},
            )
        sha256 = declared.sha256 or None
        if sha256 is not None and not is_base64_digest(sha256, 32):
            raise TransferError("invalid", _("The checksum of %(name)s is not valid.") % {"name": name})
        content_type = (declared.content_type or "application/octet-stream")[:255]
        checked.append(FileDeclared(name=name, size=size, content_type=content_type, sha256=sha256))
    total = sum(f.size for f in checked)
    if total > settings.FXFER_MAX_TRANSFER_BYTES:
        raise TransferError(
            "transfer_too_large",
            _("The files together are larger than the %(limit)s allowed per transfer.")
            % {"limit": bytes_text(settings.FXFER_MAX_TRANSFER_BYTES)},
        )
    return checked


def expiry_checked(expires_in: timedelta) -> timedelta:
    """Between an hour and FXFER_MAX_EXPIRY_DAYS."""
    if not isinstance(expires_in, timedelta) or not MIN_EXPIRY <= expires_in <= max_expiry():
        raise TransferError(
            "expiry_invalid",
            _("Choose an expiry between one hour and %(days)d days.") % {"days": settings.FXFER_MAX_EXPIRY_DAYS},
        )
    return expires_in


def max_expiry() -> timedelta:
    return timedelta(days=min(settings.FXFER_MAX_EXPIRY_DAYS, settings.FXFER_MAX_RETENTION_DAYS))


def download_limit_checked(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= settings.FXFER_MAX_DOWNLOAD_LIMIT:
        raise TransferError(
            "download_limit_invalid",
            _("Choose a download limit between 1 and %(max)d.") % {"max": settings.FXFER_MAX_DOWNLOAD_LIMIT},
        )
    return limit


def subject_checked(subject: str) -> str:
    """One line (a mail subject), without control characters."""
    subject = " ".join((subject or "").split())
    if len(subject) > MAX_SUBJECT_CHARS or any(unicodedata.category(ch) == "Cc" for ch in subject):
        raise TransferError("subject_invalid")
    return subject


def message_checked(message: str) -> str:
    message = (message or "").strip()
    if len(message) > MAX_MESSAGE_CHARS:
        raise TransferError("invalid", _("The message is too long."))
    return message


@dataclass(frozen=True)
class RequestLimits:
    """What each guest of an upload request may send (each guest on their own: one cannot use up another's)."""

    max_files: int
    max_file_bytes: int
    max_total_bytes: int
    allowed_extensions: tuple[str, ...] = ()  # casefolded, without dots; empty: any type not blocked


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def request_limits_checked(
    *, max_files: int, max_file_bytes: int, max_total_bytes: int, allowed_extensions: list[str]
) -> RequestLimits:
    """A request's limits, each within the site's own (a request cannot allow more than a transfer may hold);
    allowed extensions are cleaned, and a blocked type cannot be allowed."""
    if not _whole(max_files, 1, settings.FXFER_MAX_FILES):
        raise TransferError(
            "max_files_invalid",
            _("Choose between 1 and %(count)d files per person.") % {"count": settings.FXFER_MAX_FILES},
        )
    if not _whole(max_file_bytes, 1, settings.FXFER_MAX_FILE_BYTES):
        raise TransferError(
            "max_file_bytes_invalid",
            _("Choose a file size limit up to %(limit)s.") % {"limit": bytes_text(settings.FXFER_MAX_FILE_BYTES)},
        )
    if not _whole(max_total_bytes, max_file_bytes, settings.FXFER_MAX_TRANSFER_BYTES):
        raise TransferError(
            "max_total_bytes_invalid",
            _("Choose a total between the file size limit and %(limit)s.")
            % {"limit": bytes_text(settings.FXFER_MAX_TRANSFER_BYTES)},
        )
    blocked = {ext.casefold().lstrip(".") for ext in settings.FXFER_BLOCKED_EXTENSIONS}
    cleaned: list[str] = []
    for raw in allowed_extensions:
        extension = (raw or "").strip().casefold().lstrip(".")
        if not extension:
            continue
        if not re.fullmatch(r"[a-z0-9]{1,16}", extension):
            raise TransferError("extensions_invalid", _("%(ext)s is not a file extension.") % {"ext": (raw or "")[:40]})
        if extension in blocked:
            raise TransferError(
                "extensions_invalid",
                _("Files of type .%(ext)s are blocked and cannot be allowed.") % {"ext": extension},
            )
        if extension not in cleaned:
            cleaned.append(extension)
    return RequestLimits(
        max_files=max_files,
        max_file_bytes=max_file_bytes,
        max_total_bytes=max_total_bytes,
        allowed_extensions=tuple(cleaned),
    )


def request_limits_default() -> RequestLimits:
    """What each guest of a request (or reply) may send unless the employee chooses otherwise: the configured
    defaults, never more than the site allows."""
    max_file_bytes = min(settings.FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES, settings.FXFER_MAX_FILE_BYTES)
    return RequestLimits(
        max_files=min(settings.FXFER_REQUEST_DEFAULT_MAX_FILES, settings.FXFER_MAX_FILES),
        max_file_bytes=max_file_bytes,
        max_total_bytes=max(
            max_file_bytes, min(settings.FXFER_REQUEST_DEFAULT_MAX_TOTAL_BYTES, settings.FXFER_MAX_TRANSFER_BYTES)
        ),
    )


def keep_days_checked(days: int) -> int:
    if not _whole(days, 1, settings.FXFER_MAX_RETENTION_DAYS):
        raise TransferError(
            "keep_days_invalid",
            _("Received files may be kept between 1 and %(days)d days.") % {"days": settings.FXFER_MAX_RETENTION_DAYS},
        )
    return days


def requested_files_checked(files: list[FileDeclared], limits: RequestLimits) -> list[FileDeclared]:
    """A guest's files against the site's policy and then the request's own limits on size and type (the
    count and total across the guest's uploads are the caller's conditional write)."""
    checked = files_checked(files)
    for declared in checked:
        if declared.size > limits.max_file_bytes:
            raise TransferError(
                "file_too_large",
                _("%(name)s is larger than the %(limit)s allowed per file.")
                % {"name": declared.name, "limit": bytes_text(limits.max_file_bytes)},
            )
        extension = declared.name.rstrip(". ").casefold().rpartition(".")[2] if "." in declared.name else ""
        if limits.allowed_extensions and extension not in limits.allowed_extensions:
            raise TransferError(
                "extension_not_allowed",
                _("%(name)s: only these types are asked for: %(types)s.")
                % {"name": declared.name, "types": ", ".join(f".{e}" for e in limits.allowed_extensions)},
            )
    return checked


def limits_text(limits: RequestLimits) -> str:
    """The limits in one sentence, for the guest's mail and page."""
    text = _("Up to %(count)d files, %(size)s each, %(total)s in all.") % {
        "count": limits.max_files,
        "size": bytes_text(limits.max_file_bytes),
        "total": bytes_text(limits.max_total_bytes),
    }
    if limits.allowed_extensions:
        text += " " + _("Types: %(types)s.") % {"types": ", ".join(f".{e}" for e in limits.allowed_extensions)}
    return text


def is_base64_digest(value: object, size: int) -> bool:
    """Whether `value` is the canonical base64 of exactly `size` bytes (what S3 takes in its checksum headers)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", value):
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == size and base64.b64encode(raw).decode() == value


def sha256_checked(value: object, *, name: str) -> str:
    """The SHA-256 the uploader's browser computed for a whole file, as `sha256sum` prints it (64 hex digits,
    any case): returned as base64 of the 32 bytes, as stored. Anything else is refused, never stored or shown."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f]{64}", value):
        raise TransferError(
            "checksum_invalid",
            _("The SHA-256 of %(name)s is not valid: 64 hexadecimal digits expected.") % {"name": name},
        )
    return base64.b64encode(bytes.fromhex(value)).decode()


def crc64nvme_checked(value: object, *, name: str) -> str:
    """A CRC-64/NVME checksum (of a part or of a whole file) as S3 takes it: base64 of its 8 bytes."""
    if not is_base64_digest(value, 8):
        raise TransferError(
            "checksum_invalid",
            _("The CRC-64 checksum of %(name)s is not valid: base64 of 8 bytes expected.") % {"name": name},
        )
    return str(value)


def uses_multipart(size: int) -> bool:
    return size >= settings.FXFER_MULTIPART_THRESHOLD


def part_layout(size: int) -> tuple[int, int]:
    """(part size, part count) for a multipart upload: the configured size, grown in whole MiB when the file
    would need more than 10,000 parts; never below S3's 5 MiB minimum. static/js/send.js plans the same from
    part_plan(), so one read of a file gives its SHA-256 and its parts' CRCs from the moment it is added."""
    part_size = part_plan()["partSize"]
    if math.ceil(size / part_size) > S3_MAX_PARTS:
        part_size = math.ceil(size / S3_MAX_PARTS / MiB) * MiB
    part_size = min(part_size, S3_MAX_PART_BYTES)
    return part_size, max(1, math.ceil(size / part_size))


def part_plan() -> dict[str, int]:
    """part_layout's numbers, for the uploader's page: multipart from `from` bytes, in `partSize` parts, grown in
    whole MiB beyond `maxParts` parts, at most `maxPartSize`."""
    return {
        "from": settings.FXFER_MULTIPART_THRESHOLD,
        "partSize": max(settings.FXFER_MULTIPART_PART_BYTES, S3_MIN_PART_BYTES),
        "maxParts": S3_MAX_PARTS,
        "maxPartSize": S3_MAX_PART_BYTES,
    }


def bytes_text(size: int) -> str:
    """A size in the units the pages show (Django's filesizeformat: 1 GB = 1024 MB) and the size inputs take."""
    for unit, factor in (("GB", 1024**3), ("MB", MiB), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}".replace(".0 ", " ")
    return f"{size} B"
