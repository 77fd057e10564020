"""S3's full-object CRC-64/NVME on LocalStack, which checks it (moto does not): every part's bytes against the
CRC its URL was signed for, the whole file's at completion against the parts', and the checksum verification
records. The CRCs here come from a slow Python reference (tests/transfers/conftest.py); the browser's come from
hash-wasm (static/js/hash-worker.js). Started and provisioned by `python -m devtools.stack --provision`."""

import hashlib
import uuid
from dataclasses import dataclass

import pytest
import requests

from tests.transfers.conftest import checksums_of, crc64nvme
from transfers import selectors, services, storage
from transfers.models import File
from transfers.policy import FileDeclared

pytestmark = pytest.mark.integration

MiB = 1024**2
BODY = bytes(range(251)) * (6 * MiB // 251 + 1) + b"tail"  # just over 6 MiB: parts of 5 MiB and the rest


@dataclass(frozen=True)
class Sender:
    id: str
    email: str = "alice@corp.example"
    display_name: str = "Alice Sender"


@pytest.fixture
def upload(settings):
    """A multipart upload of BODY (two parts), its ids and each part's bytes and CRC."""
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    sender = Sender(id=f"u-{uuid.uuid4().hex[:12]}")
    created = services.transfer_create(
        sender=sender, recipients=["bob@partner.example"], files=[FileDeclared("big.bin", len(BODY))]
    )
    ids = {"owner_id": sender.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    authorized = services.upload_authorize(**ids)
    parts = {1: BODY[: 5 * MiB], 2: BODY[5 * MiB :]}
    crcs = {n: crc64nvme(chunk) for n, chunk in parts.items()}
    urls = services.upload_parts_sign(**ids, upload_id=authorized.upload_id, part_checksums=crcs).part_urls
    return {"ids": ids, "upload_id": authorized.upload_id, "parts": parts, "crcs": crcs, "urls": urls}


def _put(upload, number: int, data: bytes | None = None, crc: str | None = None) -> requests.Response:
    headers = {"x-amz-checksum-crc64nvme": crc or upload["crcs"][number]}
    return requests.put(
        upload["urls"][number], data=upload["parts"][number] if data is None else data, headers=headers, timeout=60
    )


def test_s3_refuses_a_part_whose_bytes_are_not_those_its_crc_was_signed_for(upload):
    altered = bytearray(upload["parts"][1])
    altered[12345] ^= 1  # one bit flipped on the way: the same length
    refused = _put(upload, 1, bytes(altered))
    assert refused.status_code == 400 and "BadDigest" in refused.text
    # Another CRC in the header than the one signed: the signature does not match.
    assert _put(upload, 1, crc=crc64nvme(bytes(altered))).status_code == 403
    # No CRC header at all: the same.
    assert requests.put(upload["urls"][1], data=upload["parts"][1], timeout=60).status_code == 403
    assert (
        storage.multipart_parts(
            key=File.get(upload["ids"]["transfer_id"], upload["ids"]["file_id"]).s3_key, upload_id=upload["upload_id"]
        )
        == []
    )


def test_a_whole_file_crc_that_does_not_match_the_parts_refuses_the_file(upload):
    assert _put(upload, 1).ok and _put(upload, 2).ok
    wrong = checksums_of(BODY[::-1], real_crc=True)["crc64nvme"]
    result = services.upload_complete_multipart(
        **upload["ids"], upload_id=upload["upload_id"], sha256=hashlib.sha256(BODY).hexdigest(), crc64nvme=wrong
    )
    assert (result.outcome, result.reason) == ("refused", "checksum")
    file = File.get(upload["ids"]["transfer_id"], upload["ids"]["file_id"])
    assert storage.object_head(key=file.s3_key) is None  # S3 assembled nothing


def test_a_file_sent_in_parts_keeps_s3s_full_object_crc_and_the_senders_sha256(upload):
    assert _put(upload, 1).ok and _put(upload, 2).ok
    sums = checksums_of(BODY, real_crc=True)
    result = services.upload_complete_multipart(**upload["ids"], upload_id=upload["upload_id"], **sums)
    assert result.outcome == "verified"
    file = File.get(upload["ids"]["transfer_id"], upload["ids"]["file_id"])
    head = storage.object_head(key=file.s3_key)
    assert (head.checksum_type, head.checksum_crc64nvme) == ("FULL_OBJECT", sums["crc64nvme"])
    assert file.checksum_crc64nvme == sums["crc64nvme"]
    [shown] = selectors.transfer_detail_for_owner(
        owner_id=upload["ids"]["owner_id"], transfer_id=upload["ids"]["transfer_id"]
    ).files
    assert (shown.checksum, shown.checksum_by) == (f"sha256:{hashlib.sha256(BODY).hexdigest()}", "sender")
