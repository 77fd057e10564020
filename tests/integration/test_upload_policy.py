"""The upload policy enforced by S3 itself: LocalStack's S3 checks POST policy conditions (key, exact size,
SSE-KMS fields, expiry), per-bucket CORS and presigned-URL signatures, which moto does not. Each refusal
here comes from S3, not from our code. Started and provisioned by `python -m devtools.stack --provision`."""

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
import requests
from django.conf import settings

from fxfer import aws
from tests.transfers.conftest import checksums_of, crc64nvme
from transfers import services, storage
from transfers.models import File
from transfers.policy import FileDeclared

pytestmark = pytest.mark.integration

MiB = 1024**2
BODY = b"quarterly figures, final\n"


@dataclass(frozen=True)
class Sender:
    id: str
    email: str = "alice@corp.example"
    display_name: str = "Alice Sender"


@pytest.fixture
def sender() -> Sender:
    return Sender(id=f"u-{uuid.uuid4().hex[:12]}")


def _create(sender: Sender, *files: FileDeclared) -> services.TransferCreated:
    return services.transfer_create(
        sender=sender, recipients=["bob@partner.example"], files=list(files) or [FileDeclared("a.pdf", len(BODY))]
    )


def _authorize(sender: Sender, created, index: int = 0) -> services.UploadAuthorized:
    return services.upload_authorize(
        owner_id=sender.id, transfer_id=created.transfer_id, file_id=created.files[index].file_id
    )


def _post(authorized: services.UploadAuthorized, body: bytes, *, origin: str | None = None, **changes):
    fields = {k: v for k, v in {**authorized.fields, **changes}.items() if v is not None}
    headers = {"Origin": origin} if origin else {}
    return requests.post(authorized.url, data=fields, files={"file": ("x", body)}, headers=headers, timeout=30)


def _nothing_stored(key: str) -> bool:
    return storage.object_head(key=key) is None


def test_a_post_with_the_servers_fields_is_stored_encrypted_and_verified(sender):
    created = _create(sender)
    authorized = _authorize(sender, created)
    response = _post(authorized, BODY, origin=settings.FXFER_BASE_URL)
    assert response.status_code == 201, response.text
    assert response.headers.get("Access-Control-Allow-Origin") == settings.FXFER_BASE_URL
    verified = services.upload_done(
        owner_id=sender.id, transfer_id=created.transfer_id, file_id=created.files[0].file_id
    )
    assert (verified.outcome, verified.released) == ("verified", True)
    head = storage.object_head(key=created.files[0].key)
    assert head.encryption == "aws:kms" and head.kms_key_id == storage.kms_key_arn()


def test_one_byte_more_than_declared_is_refused_by_s3(sender):
    created = _create(sender)
    response = _post(_authorize(sender, created), BODY + b"!")
    assert response.status_code == 400 and "EntityTooLarge" in response.text
    assert _nothing_stored(created.files[0].key)


def test_one_byte_less_than_declared_is_refused_by_s3(sender):
    created = _create(sender)
    response = _post(_authorize(sender, created), BODY[:-1])
    assert response.status_code == 400 and "EntityTooSmall" in response.text


def test_another_key_is_refused_by_s3(sender):
    created = _create(sender)
    other_key = f"files/{created.transfer_id}/someoneelsesfile0"
    response = _post(_authorize(sender, created), BODY, key=other_key)
    assert response.status_code == 403, response.text
    assert _nothing_stored(other_key) and _nothing_stored(created.files[0].key)


@pytest.mark.parametrize(
    "changes",
    [
        {"x-amz-server-side-encryption": None, "x-amz-server-side-encryption-aws-kms-key-id": None},
        {"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-aws-kms-key-id": None},
        {"x-amz-server-side-encryption": "AES256"},
    ],
    ids=["no-encryption-fields", "aes256-instead", "aes256-with-key-id"],
)
def test_missing_or_other_encryption_is_refused_by_s3(sender, changes):
    created = _create(sender)
    response = _post(_authorize(sender, created), BODY, **changes)
    assert response.status_code in {400, 403}, response.text
    assert _nothing_stored(created.files[0].key)


def test_another_kms_key_is_refused_by_s3(sender):
    other_key = aws.client("kms").create_key(Description="not fxfer's")["KeyMetadata"]["Arn"]
    created = _create(sender)
    response = _post(_authorize(sender, created), BODY, **{"x-amz-server-side-encryption-aws-kms-key-id": other_key})
    assert response.status_code == 403, response.text
    assert _nothing_stored(created.files[0].key)


def test_an_expired_policy_is_refused_by_s3(sender, settings):
    settings.FXFER_UPLOAD_POLICY_SECONDS = 1
    created = _create(sender)
    authorized = _authorize(sender, created)
    time.sleep(2.1)
    response = _post(authorized, BODY)
    assert response.status_code == 403 and "expired" in response.text.lower()
    assert _nothing_stored(created.files[0].key)


def test_a_body_unlike_the_declared_sha256_is_refused_by_s3_and_the_right_one_keeps_its_checksum(sender):
    digest = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    created = _create(sender, FileDeclared("a.pdf", len(BODY), sha256=digest))
    tampered = BODY[:-2] + b"!\n"  # same size, other bytes
    response = _post(_authorize(sender, created), tampered)
    assert response.status_code == 400, response.text
    assert _nothing_stored(created.files[0].key)
    assert _post(_authorize(sender, created), BODY).status_code == 201
    ids = {"owner_id": sender.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    assert services.upload_done(**ids).outcome == "verified"
    assert File.get(created.transfer_id, created.files[0].file_id).checksum_sha256 == digest


def test_a_cors_preflight_for_the_upload_from_another_origin_is_refused_by_s3(sender):
    authorized = _authorize(sender, _create(sender))
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    refused = requests.options(authorized.url, headers={"Origin": "https://attacker.example", **headers}, timeout=10)
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    allowed = requests.options(authorized.url, headers={"Origin": settings.FXFER_BASE_URL, **headers}, timeout=10)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == settings.FXFER_BASE_URL


def test_a_multipart_upload_through_presigned_part_urls_completes_and_verifies(sender, settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    body = bytes(range(256)) * (10 * MiB // 256)
    created = _create(sender, FileDeclared("big.bin", len(body)))
    authorized = _authorize(sender, created)
    assert (authorized.mode, authorized.part_count) == ("multipart", 2)
    ids = {"owner_id": sender.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    crcs = {n: crc64nvme(body[(n - 1) * authorized.part_size : n * authorized.part_size]) for n in (1, 2)}
    urls = services.upload_parts_sign(**ids, upload_id=authorized.upload_id, part_checksums=crcs).part_urls
    for number, url in urls.items():
        chunk = body[(number - 1) * authorized.part_size : number * authorized.part_size]
        headers = {"Origin": settings.FXFER_BASE_URL, "x-amz-checksum-crc64nvme": crcs[number]}
        response = requests.put(url, data=chunk, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        assert "ETag" in response.headers.get("Access-Control-Expose-Headers", "")  # the browser can read it
    sums = checksums_of(body, real_crc=True)
    verified = services.upload_complete_multipart(**ids, upload_id=authorized.upload_id, **sums)
    assert (verified.outcome, verified.released) == ("verified", True)
    head = storage.object_head(key=created.files[0].key)
    assert head.etag.endswith('-2"') and head.size == len(body)
    assert head.encryption == "aws:kms" and head.kms_key_id == storage.kms_key_arn()
    assert File.get(created.transfer_id, created.files[0].file_id).etag == head.etag


def test_a_part_url_cannot_be_reused_for_another_part_or_after_it_expires(sender, settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB
    settings.FXFER_PART_URL_SECONDS = 1
    created = _create(sender, FileDeclared("big.bin", 10 * MiB))
    authorized = _authorize(sender, created)
    ids = {"owner_id": sender.id, "transfer_id": created.transfer_id, "file_id": created.files[0].file_id}
    crc = crc64nvme(b"x" * 5 * MiB)
    urls = services.upload_parts_sign(**ids, upload_id=authorized.upload_id, part_checksums={1: crc, 2: crc}).part_urls
    headers = {"x-amz-checksum-crc64nvme": crc}
    tampered = urls[1].replace("partNumber=1", "partNumber=2")
    assert requests.put(tampered, data=b"x" * 5 * MiB, headers=headers, timeout=60).status_code == 403
    time.sleep(2.1)
    assert requests.put(urls[2], data=b"x" * 5 * MiB, headers=headers, timeout=60).status_code == 403


def test_the_download_is_an_octet_stream_attachment_with_the_japanese_name(sender):
    name = "見積書 2026.pdf"
    created = _create(sender, FileDeclared(name, len(BODY)))
    assert _post(_authorize(sender, created), BODY).status_code == 201
    services.upload_done(owner_id=sender.id, transfer_id=created.transfer_id, file_id=created.files[0].file_id)
    file = File.get(created.transfer_id, created.files[0].file_id)
    url = storage.download_url(key=file.s3_key, version_id=file.version_id, filename=file.name)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == BODY
    assert response.headers["Content-Type"] == "application/octet-stream"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="download_2026.pdf"; ')
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == name
