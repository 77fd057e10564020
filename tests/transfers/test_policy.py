"""Policy before any byte moves: every violation is refused with its own code and a clear message, and
nothing is written."""

from datetime import timedelta
from urllib.parse import unquote

import pytest

from reports.models import AuditEvent
from tests.transfers.conftest import create
from transfers import policy, storage
from transfers.errors import TransferError
from transfers.models import File, Transfer
from transfers.policy import FileDeclared

GiB = 1024**3


def _items() -> tuple[int, int, int]:
    return len(list(Transfer.scan())), len(list(File.scan())), len(list(AuditEvent.scan()))


def _refused(code: str, **kwargs) -> TransferError:
    before = _items()
    with pytest.raises(TransferError) as caught:
        create(**kwargs)
    assert caught.value.code == code
    assert caught.value.message and caught.value.status == 400
    assert _items() == before  # refused before anything was written
    return caught.value


@pytest.mark.parametrize(
    "name",
    ["setup.exe", "SETUP.EXE", "invoice.pdf.exe", "run.bat", "x.js", "macro.vbs", "p.ps1", "i.msi", "s.scr",
     "trailing.exe.", "trailing.exe  ", "a.CoM"],
)  # fmt: skip
def test_blocked_extensions_are_refused_whatever_their_case_or_disguise(name):
    error = _refused("extension_blocked", files=[FileDeclared(name=name, size=10)])
    assert name.strip() in error.message


@pytest.mark.parametrize("name", ["report.pdf", "archive.tar.gz", "README", "www.example.com.pdf", "報告書.xlsx"])
def test_ordinary_names_pass(name):
    assert policy.file_name_checked(name) == name


def test_names_with_bidi_overrides_or_control_characters_are_refused():
    _refused("file_name_invalid", files=[FileDeclared(name="invoice\u202efdp.exe", size=10)])
    _refused("file_name_invalid", files=[FileDeclared(name="a\nb.pdf", size=10)])


def test_a_file_over_the_size_limit_is_refused(settings):
    settings.FXFER_MAX_FILE_BYTES = 1000
    error = _refused("file_too_large", files=[FileDeclared(name="big.bin", size=1001)])
    assert "big.bin" in error.message


def test_too_many_files_are_refused(settings):
    settings.FXFER_MAX_FILES = 2
    _refused("too_many_files", files=[FileDeclared(name=f"{n}.txt", size=1) for n in range(3)])


def test_the_total_size_is_limited(settings):
    settings.FXFER_MAX_TRANSFER_BYTES = 100
    _refused("transfer_too_large", files=[FileDeclared(name="a.bin", size=60), FileDeclared(name="b.bin", size=60)])


def test_empty_and_negative_sizes_are_refused():
    _refused("file_empty", files=[FileDeclared(name="a.bin", size=0)])
    _refused("invalid", files=[FileDeclared(name="a.bin", size=-5)])


def test_bad_recipient_addresses_are_refused():
    error = _refused("recipient_invalid", recipients=["bob@partner.example", "not an address"])
    assert "not an address" in error.message


def test_the_deny_list_wins_and_covers_subdomains(settings):
    settings.FXFER_RECIPIENT_DOMAINS_DENY = ["rival.example"]
    error = _refused("recipient_domain_refused", recipients=["spy@mail.rival.example"])
    assert "mail.rival.example" in error.message


def test_with_an_allow_list_only_those_domains_pass(settings):
    settings.FXFER_RECIPIENT_DOMAINS_ALLOW = ["partner.example"]
    _refused("recipient_domain_refused", recipients=["x@elsewhere.example"])
    assert create(recipients=["bob@PARTNER.example", "amy@eu.partner.example"]).recipients == (
        "bob@partner.example",
        "amy@eu.partner.example",
    )


def test_recipients_are_deduplicated_and_limited(settings):
    assert create(recipients=["Bob@partner.example", "bob@partner.example", " "]).recipients == ("Bob@partner.example",)
    settings.FXFER_MAX_RECIPIENTS = 2
    _refused("too_many_recipients", recipients=["a@x.example", "b@x.example", "c@x.example"])
    _refused("recipients_missing", recipients=[" "])


def test_expiry_must_be_between_an_hour_and_the_policy_maximum(settings):
    settings.FXFER_MAX_EXPIRY_DAYS = 14
    _refused("expiry_invalid", expires_in=timedelta(days=15))
    _refused("expiry_invalid", expires_in=timedelta(minutes=59))
    assert create(expires_in=timedelta(hours=1)).expires_at - create().expires_at < timedelta(0)


def test_expiry_can_never_exceed_how_long_files_are_kept(settings):
    settings.FXFER_MAX_EXPIRY_DAYS = 60
    settings.FXFER_MAX_RETENTION_DAYS = 30
    _refused("expiry_invalid", expires_in=timedelta(days=31))


def test_default_expiry_is_seven_days():
    created = create()
    transfer = Transfer.get(created.transfer_id)
    assert transfer.expires_at - transfer.created_at == timedelta(days=7)


def test_download_limit_and_subject_are_checked():
    _refused("download_limit_invalid", download_limit=0)
    _refused("subject_invalid", subject="x" * 201)


@pytest.mark.parametrize(
    ("size", "part_size", "parts"),
    [
        (100 * 1024**2, 16 * 1024**2, 7),
        (50 * GiB, 16 * 1024**2, 3200),
        (1000 * GiB, 103 * 1024**2, 9942),  # grows so that 10,000 parts always suffice
    ],
)
def test_part_layout_fits_tens_of_gigabytes_in_s3_limits(size, part_size, parts):
    assert policy.part_layout(size) == (part_size, parts)
    assert part_size >= 5 * 1024**2 and parts <= 10_000 and part_size * parts >= size


def test_content_disposition_keeps_japanese_names_and_an_ascii_fallback():
    header = storage.content_disposition("見積書 2026.pdf")
    assert header.startswith('attachment; filename="download_2026.pdf"; ')
    encoded = header.split("filename*=UTF-8''")[1]
    assert unquote(encoded) == "見積書 2026.pdf"
    assert " " not in encoded and '"' not in encoded


def test_content_disposition_fallback_cannot_break_out_of_its_quotes():
    header = storage.content_disposition('a"b\\c\r\nSet-Cookie: x.txt')
    fallback = header.split('filename="')[1].split('"; ')[0]
    assert '"' not in fallback and "\\" not in fallback and "\r" not in fallback and "\n" not in fallback
    assert "\r" not in header and "\n" not in header


def test_content_disposition_of_an_all_japanese_name_falls_back_to_download():
    assert storage.content_disposition("報告書.xlsx").startswith('attachment; filename="download.xlsx"; ')


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        # The ASCII parts stay, each Japanese run becomes one "_"; a name with no letter left says "download".
        ("見積書_2026年度.pdf", "download_2026.pdf"),
        ("見積書_Acme様_2026年度.pdf", "Acme_2026.pdf"),
        ("Q3売上report.xlsx", "Q3_report.xlsx"),
        ("Résumé \u2013 final.docx", "Resume _ final.docx"),  # an en dash
        ("契約書.\uff30\uff24\uff26", "download.PDF"),  # full-width letters fold to ASCII
        ("メモ", "download"),
    ],
)
def test_content_disposition_ascii_fallback_is_a_meaningful_name(name, fallback):
    header = storage.content_disposition(name)
    assert header.startswith(f'attachment; filename="{fallback}"; ')
    assert unquote(header.split("filename*=UTF-8''")[1]) == name
