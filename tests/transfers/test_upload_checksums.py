"""Every file's SHA-256, computed by the uploader's browser (static/js/hash-worker.js), and S3's full-object
CRC-64/NVME for files sent in parts (issue 15 item 6): what the server takes, refuses, stores and shows.

moto (without awscrt) keeps a CRC-64/NVME it computes wrongly and checks none: here any well-formed CRC stands
in, and tests/integration/test_upload_checksums.py proves on LocalStack that S3 refuses wrong ones."""

import base64
import contextlib
import hashlib

import pytest

from fxfer import aws
from reports.selectors import transfer_file
from tests import faults
from tests.faults import ERROR, inject
from tests.transfers.conftest import (
    ALICE,
    ANY_CRC,
    Sender,
    browser_put_parts,
    checksums_of,
    create,
    put_object_as_browser,
    sign_parts,
)
from tests.transfers.test_uploads import BIG, MiB, _call
from transfers import selectors, services, storage
from transfers.errors import TransferError
from transfers.models import File
from transfers.policy import FileDeclared

SHA256_HEX = hashlib.sha256(BIG).hexdigest()

HOSTILE_SHA256 = [
    None,
    "",
    "a" * 63,
    "a" * 65,
    "g" * 64,
    " " + "a" * 63,
    base64.b64encode(hashlib.sha256(BIG).digest()).decode(),  # base64, not the hex sha256sum prints
    "<script>alert(1)</script>" + "a" * 39,
    "\uff10" * 64,  # full-width digits: not ASCII hex
    123,
    ["a" * 64],
]
HOSTILE_CRC = [None, "", "AAAAAAAAAAA", "AAAAAAAAAAAB", "AAAAAAAAAAAAAAAA", "AAAAAAAAAA==", "AAAAAAAAAA!=", 7]


@pytest.fixture
def small_parts(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    settings.FXFER_PART_URL_BATCH = 2


@pytest.fixture
def alice_browser(client):
    """Alice signed in through SSO: the uploader's JSON endpoints as send.js calls them."""
    from tests.transfers.test_views import alice_id, sign_in

    sign_in(client)
    return Sender(id=alice_id(), email="alice@example.com", display_name="Alice")


def _ids(created, index=0, owner=ALICE) -> dict:
    return {"owner_id": owner.id, "transfer_id": created.transfer_id, "file_id": created.files[index].file_id}


def _uploaded(created, index=0, owner=ALICE) -> str:
    """A multipart upload of BIG with every part in S3: its upload id."""
    ids = _ids(created, index, owner)
    authorized = services.upload_authorize(**ids)
    browser_put_parts(sign_parts(ids, authorized.upload_id, [1, 2]), BIG, authorized.part_size)
    browser_put_parts(sign_parts(ids, authorized.upload_id, [3]), BIG, authorized.part_size)
    return authorized.upload_id


def test_a_multipart_upload_carries_s3s_full_object_crc64nvme(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    ids = _ids(created)
    authorized = services.upload_authorize(**ids)
    [upload] = aws.client("s3").list_multipart_uploads(Bucket=storage.settings.FXFER_BUCKET)["Uploads"]
    assert (upload["UploadId"], upload["ChecksumAlgorithm"], upload["ChecksumType"]) == (
        authorized.upload_id,
        "CRC64NVME",
        "FULL_OBJECT",
    )
    browser_put_parts(sign_parts(ids, authorized.upload_id, [1, 2]), BIG, authorized.part_size)
    browser_put_parts(sign_parts(ids, authorized.upload_id, [3]), BIG, authorized.part_size)
    verified = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **checksums_of(BIG))
    assert verified.outcome == "verified"
    head = storage.object_head(key=created.files[0].key)
    assert head.checksum_type == "FULL_OBJECT" and head.checksum_crc64nvme
    file = File.get(created.transfer_id, created.files[0].file_id)
    # S3's own checksum is what verification records; the SHA-256 is the browser's, kept as its word.
    assert file.checksum_crc64nvme == head.checksum_crc64nvme
    assert (file.declared_sha256, file.checksum_sha256) == (base64.b64encode(bytes.fromhex(SHA256_HEX)).decode(), None)


@pytest.mark.parametrize("hostile", HOSTILE_SHA256, ids=repr)
def test_a_hostile_sha256_at_completion_is_refused_with_a_clear_error_and_loses_nothing(
    client, alice_browser, small_parts, hostile
):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))], sender=alice_browser)
    upload_id = _uploaded(created, owner=alice_browser)
    answer = _call(client, created, "complete", {"uploadId": upload_id, "sha256": hostile, "crc64nvme": ANY_CRC})
    assert (answer.status_code, answer.json()["error"]) == (400, "checksum_invalid")
    assert answer.json()["message"] == "The SHA-256 of big.bin is not valid: 64 hexadecimal digits expected."
    file = File.get(created.transfer_id, created.files[0].file_id)
    assert (file.state, file.declared_sha256, file.multipart_upload_id) == ("pending", None, upload_id)
    assert len(storage.multipart_parts(key=file.s3_key, upload_id=upload_id)) == 3  # nothing lost: complete again
    again = _call(client, created, "complete", {"uploadId": upload_id, **checksums_of(BIG)})
    assert again.json()["outcome"] == "verified"


@pytest.mark.parametrize("hostile", HOSTILE_CRC, ids=repr)
def test_a_hostile_crc_is_refused_for_a_part_url_and_at_completion(client, alice_browser, small_parts, hostile):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))], sender=alice_browser)
    upload_id = _uploaded(created, owner=alice_browser)
    signing = _call(client, created, "parts", {"uploadId": upload_id, "parts": {"1": hostile}})
    assert (signing.status_code, signing.json()["error"]) == (400, "checksum_invalid")
    completing = _call(client, created, "complete", {"uploadId": upload_id, "sha256": SHA256_HEX, "crc64nvme": hostile})
    assert (completing.status_code, completing.json()["error"]) == (400, "checksum_invalid")
    assert "CRC-64" in completing.json()["message"]
    assert File.get(created.transfer_id, created.files[0].file_id).state == "pending"


@pytest.mark.parametrize(
    "hostile",
    [
        "A" * 43,  # no padding
        "A" * 42 + "B=",  # not canonical: stray bits in the last character
        "A" * 44 + "=",
        "////" * 11,
    ],
)
def test_a_hostile_sha256_declared_with_a_small_file_is_refused(hostile):
    with pytest.raises(TransferError) as caught:
        create(files=[FileDeclared(name="a.pdf", size=11, sha256=hostile)])
    assert caught.value.code == "invalid"


@contextlib.contextmanager
def _s3_refuses(operation: str, code: str):
    """S3 answers `operation` once with an error that retrying cannot fix (as it does for a full-object
    checksum that does not match the parts': moto does not check it)."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    body = f"<Error><Code>{code}</Code><Message>did not match the calculated checksum</Message></Error>".encode()
    answered = []

    def refusing(self, event_name, request, **kwargs):
        if not answered and event_name.endswith(f".{operation}"):
            answered.append(event_name)
            return faults._response(request, 400, "application/xml", body)
        return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = refusing
    try:
        yield answered
    finally:
        BotocoreStubber.__call__ = original


def test_a_whole_file_crc_that_s3_refuses_refuses_the_file_which_may_be_sent_again(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    ids = _ids(created)
    upload_id = _uploaded(created)
    with _s3_refuses("CompleteMultipartUpload", "BadDigest") as answered:
        refused = services.upload_complete_multipart(**ids, upload_id=upload_id, **checksums_of(BIG))
    assert answered and (refused.outcome, refused.reason) == ("refused", "checksum")
    assert storage.multipart_parts(key=created.files[0].key, upload_id=upload_id) is None  # aborted
    again = services.upload_authorize(**ids)  # the uploader tries again: a new upload
    assert again.upload_id != upload_id
    browser_put_parts(sign_parts(ids, again.upload_id, [1, 2]), BIG, again.part_size)
    browser_put_parts(sign_parts(ids, again.upload_id, [3]), BIG, again.part_size)
    assert services.upload_complete_multipart(**ids, upload_id=again.upload_id, **checksums_of(BIG)).outcome == (
        "verified"
    )


def test_s3_busy_at_completion_keeps_the_declared_checksums_and_the_retry_completes(small_parts, mailoutbox):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    ids = _ids(created)
    upload_id = _uploaded(created)
    with inject(ERROR, service="s3", operation="CompleteMultipartUpload", times=10):
        with pytest.raises(TransferError) as caught:
            services.upload_complete_multipart(**ids, upload_id=upload_id, **checksums_of(BIG))
    assert caught.value.code == "unavailable"
    file = File.get(created.transfer_id, created.files[0].file_id)
    assert (file.state, file.declared_crc64nvme) == ("pending", ANY_CRC)
    done = services.upload_complete_multipart(**ids, upload_id=upload_id, **checksums_of(BIG))
    assert (done.outcome, done.released, len(mailoutbox)) == ("verified", True, 1)


def test_an_upload_started_before_checksums_is_started_again(small_parts):
    created = create(files=[FileDeclared(name="big.bin", size=len(BIG))])
    ids = _ids(created)
    first = services.upload_authorize(**ids)
    File(parent_id=created.transfer_id, file_id=created.files[0].file_id).update(
        actions=[File.multipart_checksum.remove()]  # as an upload created by the code before this one
    )
    again = services.upload_authorize(**ids)
    assert again.upload_id != first.upload_id
    assert storage.multipart_parts(key=created.files[0].key, upload_id=first.upload_id) is None  # aborted


def test_recipients_see_the_sha256_as_sha256sum_prints_it_and_who_vouches_for_it(
    client, alice_browser, small_parts, mailoutbox
):
    small_sha = base64.b64encode(hashlib.sha256(b"hello world").digest()).decode()
    created = create(
        files=[FileDeclared(name="a.pdf", size=11, sha256=small_sha), FileDeclared(name="big.bin", size=len(BIG))],
        sender=alice_browser,
    )
    put_object_as_browser(created.files[0].key, b"hello world", ChecksumAlgorithm="SHA256")  # as the POST does
    assert _call(client, created, "done").json() == {"outcome": "verified", "reason": None, "released": False}
    upload_id = _uploaded(created, 1, owner=alice_browser)
    assert _call(client, created, "complete", {"uploadId": upload_id, **checksums_of(BIG)}, index=1).json()["released"]

    detail = selectors.transfer_detail_for_owner(owner_id=alice_browser.id, transfer_id=created.transfer_id)
    shown = {f.name: (f.checksum, f.checksum_by) for f in detail.files}
    assert shown == {
        "a.pdf": (f"sha256:{hashlib.sha256(b'hello world').hexdigest()}", "s3"),  # S3 checked the POSTed body
        "big.bin": (f"sha256:{SHA256_HEX}", "sender"),  # the browser's word; S3 checked the CRCs
    }
    page = client.get(f"/transfers/{created.transfer_id}/").content.decode()
    assert SHA256_HEX in page and "SHA-256 computed by the uploader's browser (their word)" in page
    assert "checked by S3 against the stored file" in page

    rows = {f.name: f for f in transfer_file(transfer_id=created.transfer_id).files}  # compliance's page
    assert (rows["big.bin"].sha256_hex, rows["big.bin"].checksum_by) == (SHA256_HEX, "sender")
    assert rows["big.bin"].checksum_crc64nvme and rows["a.pdf"].checksum_by == "s3"
