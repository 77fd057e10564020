"""Issue 12, item 10: what a transfer's recipients may send back is the sender's choice, made on New transfer
with the Request files form's limit fields (files per person, size of each, total, types) and their defaults,
which are not the site's maxima. The reply guest cannot declare more or larger files than chosen; limits the
site does not allow are a 400 that names the field, and nothing is created."""

import re

import pytest
from django.conf import settings
from django.test import Client

from tests.faults import LOST, inject
from tests.transfers.test_views import form_data, guest_in, links, post_json, send_small_file, text
from transfers.models import File, Recipient, Transfer

MiB = 1024**2
GiB = 1024**3
BOB = "bob@partner.example"
LIMITS = {
    "allow_replies": True,
    "reply_max_files": 2,
    "reply_max_file_size": 1,
    "reply_max_file_size_unit": "MB",
    "reply_max_total_size": 1,
    "reply_max_total_size_unit": "MB",
    "reply_allowed_extensions": "pdf, .XLSX",
}


@pytest.fixture
def alice(client):
    from tests.transfers.test_views import sign_in

    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return sign_in(client)


def selected(page: str, name: str) -> str:
    """The option chosen in a <select> of the page."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select, f"no <select name={name}>"
    return re.search(r'<option value="([^"]*)"[^>]*selected', select[1])[1]


def reply_request_of(transfer_id: str) -> Transfer:
    return Transfer.get(Transfer.get(transfer_id).reply_request_id)


def replying_guest(mailoutbox, to: str = BOB) -> Client:
    """A recipient's browser: link, code, their files page, then "Reply with files" to the upload page."""
    guest = guest_in(mailoutbox, links(mailoutbox)[to], to)
    assert guest.post("/guest/reply")["Location"] == "/guest/upload/"
    return guest


def declare(guest, *files: tuple[str, int]):
    return post_json(guest, "/guest/upload/files", {"files": [{"name": n, "size": s, "type": ""} for n, s in files]})


def test_new_transfer_offers_the_reply_limits_with_the_request_defaults_not_the_sites_maximum(alice):
    page = text(alice.get("/transfers/new"))
    for label in (
        "Files per person, at most",
        "Size of each file, at most",
        "All files of one person, at most",
        "Only these file types",
    ):
        assert f">{label}</label>" in page
    # Hidden until "Let recipients send files back" is ticked.
    assert 'id="reply-limits" hidden' in page
    assert f'name="reply_max_files" value="{settings.FXFER_REQUEST_DEFAULT_MAX_FILES}"' in page
    # In the units a person thinks in: 2 GB and 10 GB, not 2048 and 10240 MiB.
    assert settings.FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES == 2 * GiB
    assert settings.FXFER_REQUEST_DEFAULT_MAX_TOTAL_BYTES == 10 * GiB
    assert 'name="reply_max_file_size" value="2"' in page and 'name="reply_max_total_size" value="10"' in page
    assert selected(page, "reply_max_file_size_unit") == selected(page, "reply_max_total_size_unit") == "GB"
    assert settings.FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES < settings.FXFER_MAX_FILE_BYTES
    assert settings.FXFER_REQUEST_DEFAULT_MAX_TOTAL_BYTES < settings.FXFER_MAX_TRANSFER_BYTES
    # Request files starts from the same defaults.
    requests_page = text(alice.get("/requests/new"))
    assert 'name="max_file_size" value="2"' in requests_page and 'name="max_total_size" value="10"' in requests_page
    assert selected(requests_page, "max_file_size_unit") == selected(requests_page, "max_total_size_unit") == "GB"


def test_the_reply_guest_cannot_send_more_or_larger_files_than_the_sender_chose(alice, mailoutbox):
    sent = send_small_file(alice, mailoutbox, **LIMITS)
    reply = reply_request_of(sent["transferId"])
    assert (reply.max_files, reply.max_file_bytes, reply.max_total_bytes) == (2, MiB, MiB)
    assert reply.allowed_extensions == "pdf,xlsx"
    guest = replying_guest(mailoutbox)
    assert "Up to 2 files, 1 MB each, 1 MB in all. Types: .pdf, .xlsx." in text(guest.get("/guest/upload/"))

    too_large = declare(guest, ("answer.pdf", MiB + 1))
    assert (too_large.status_code, too_large.json()["error"]) == (400, "file_too_large")
    assert too_large.json()["message"] == "answer.pdf is larger than the 1 MB allowed per file."
    too_many = declare(guest, ("a.pdf", 10), ("b.pdf", 10), ("c.pdf", 10))
    assert (too_many.status_code, too_many.json()["error"]) == (400, "too_many_files")
    over_total = declare(guest, ("a.pdf", MiB - 10), ("b.pdf", 100))
    assert over_total.status_code == 400 and over_total.json()["error"] == "transfer_too_large"
    wrong_type = declare(guest, ("answer.zip", 10))
    assert (wrong_type.status_code, wrong_type.json()["error"]) == (400, "extension_not_allowed")
    assert list(File.query(reply.transfer_id)) == []  # nothing reserved by a refusal

    assert declare(guest, ("answer.pdf", MiB - 10)).status_code == 201
    # The first file used up most of the total: the second may not take more than is left.
    second = declare(guest, ("more.xlsx", 100))
    assert second.status_code == 400 and second.json()["error"] == "transfer_too_large"
    assert [f.name for f in File.query(reply.transfer_id)] == ["answer.pdf"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"reply_max_files": 0}, "reply_max_files", "greater than or equal to 1"),
        ({"reply_max_files": ""}, "reply_max_files", "This field is required."),
        ({"reply_max_files": "many"}, "reply_max_files", "Enter a whole number."),
        ({"reply_max_files": 101}, "reply_max_files", "Choose between 1 and 100 files per person."),
        (
            {
                "reply_max_file_size": 51,
                "reply_max_file_size_unit": "GB",
                "reply_max_total_size": 60,
                "reply_max_total_size_unit": "GB",
            },
            "reply_max_file_size",
            "Choose a file size limit up to 50 GB.",
        ),
        (
            {"reply_max_total_size": "100.01", "reply_max_total_size_unit": "GB"},
            "reply_max_total_size",
            "Choose a total between",
        ),
        ({"reply_max_file_size": 20, "reply_max_total_size": 10}, "reply_max_total_size", "Choose a total between"),
        ({"reply_max_file_size": 0}, "reply_max_file_size", "greater than or equal to 0.01"),
        ({"reply_max_file_size": "1,5"}, "reply_max_file_size", "Enter a number."),
        ({"reply_max_file_size_unit": "TB"}, "reply_max_file_size", "Choose MB or GB."),
        ({"reply_max_total_size_unit": ""}, "reply_max_total_size", "Choose MB or GB."),
        ({"reply_allowed_extensions": "pdf, exe"}, "reply_allowed_extensions", ".exe are blocked"),
        ({"reply_allowed_extensions": "p*f"}, "reply_allowed_extensions", "p*f is not a file extension."),
    ],
)
def test_limits_the_site_does_not_allow_are_refused_at_their_field_and_nothing_is_created(
    alice, changes, field, message
):
    response = post_json(alice, "/transfers/new", form_data(**{**LIMITS, **changes}))
    assert response.status_code == 400, response.content
    answer = response.json()
    assert list(answer["fields"]) == [field]
    assert message in " ".join(answer["fields"][field])
    assert list(Transfer.scan()) == [] and list(File.scan()) == [] and list(Recipient.scan()) == []


def test_sizes_are_chosen_in_mb_or_gb_and_may_have_a_fraction(alice):
    limits = {
        "reply_max_file_size": "1.5",
        "reply_max_file_size_unit": "GB",
        "reply_max_total_size": 3,
        "reply_max_total_size_unit": "GB",
    }
    response = post_json(alice, "/transfers/new", form_data(**{**LIMITS, **limits}))
    assert response.status_code == 201, response.content
    reply = reply_request_of(response.json()["transferId"])
    assert (reply.max_file_bytes, reply.max_total_bytes) == (1536 * MiB, 3 * GiB)


def test_the_limits_do_not_matter_without_replies(alice):
    response = post_json(alice, "/transfers/new", form_data(**{**LIMITS, "allow_replies": False, "reply_max_files": 0}))
    assert response.status_code == 201
    assert Transfer.get(response.json()["transferId"]).reply_request_id is None


def test_a_client_that_sends_no_limits_gets_the_request_defaults(alice):
    response = post_json(alice, "/transfers/new", form_data(allow_replies=True))
    assert response.status_code == 201
    reply = reply_request_of(response.json()["transferId"])
    assert reply.max_files == settings.FXFER_REQUEST_DEFAULT_MAX_FILES
    assert reply.max_file_bytes == settings.FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES != settings.FXFER_MAX_FILE_BYTES
    assert reply.max_total_bytes == settings.FXFER_REQUEST_DEFAULT_MAX_TOTAL_BYTES
    assert reply.allowed_extensions in (None, "")


def test_a_lost_answer_creates_one_transfer_whose_replies_carry_the_chosen_limits(alice):
    with inject(LOST, service="dynamodb", operation="TransactWriteItems") as fault:
        response = post_json(alice, "/transfers/new", form_data(**LIMITS))
    assert fault.fired and response.status_code == 201
    [transfer] = [t for t in Transfer.scan() if t.kind == "send"]
    [reply] = [t for t in Transfer.scan() if t.kind == "request"]
    assert transfer.transfer_id == response.json()["transferId"] and reply.reply_to == transfer.transfer_id
    assert (reply.max_files, reply.max_file_bytes, reply.max_total_bytes) == (2, MiB, MiB)
