"""Against the policy-enforcing stand-ins (LocalStack S3 + KMS, moto server DynamoDB + SES) that
`python -m devtools.stack --provision fxfer.settings.test` started and provisioned before this run."""

import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.conf import settings

from fxfer import aws
from fxfer.provisioning import UNCHANGED, provision

pytestmark = pytest.mark.integration


def _request(method: str, url: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def _bucket_url() -> str:
    return f"{settings.FXFER_S3_ENDPOINT}/{settings.FXFER_BUCKET}"


def test_provisioning_the_real_stand_ins_again_changes_nothing():
    changed = [step for step in provision() if step.action != UNCHANGED]
    assert changed == []


def test_healthz_is_ok_on_the_stand_ins(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content


def test_objects_are_encrypted_with_our_kms_key_by_default():
    s3 = aws.client("s3")
    key = f"files/{uuid.uuid4().hex}/probe"
    s3.put_object(Bucket=settings.FXFER_BUCKET, Key=key, Body=b"hello")  # no SSE header at all
    head = s3.head_object(Bucket=settings.FXFER_BUCKET, Key=key)
    key_arn = aws.client("kms").describe_key(KeyId=settings.FXFER_KMS_KEY_ID)["KeyMetadata"]["Arn"]
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert head["BucketKeyEnabled"] is True


def test_cors_preflight_from_the_site_is_allowed_and_exposes_etag():
    status, headers = _request(
        "OPTIONS",
        f"{_bucket_url()}/files/x",
        {"Origin": settings.FXFER_BASE_URL, "Access-Control-Request-Method": "PUT"},
    )
    assert status == 200
    assert headers.get("Access-Control-Allow-Origin") == settings.FXFER_BASE_URL
    assert "ETag" in headers.get("Access-Control-Expose-Headers", "")


def test_cors_preflight_from_another_origin_is_refused_by_s3():
    status, headers = _request(
        "OPTIONS",
        f"{_bucket_url()}/files/x",
        {"Origin": "https://attacker.example", "Access-Control-Request-Method": "PUT"},
    )
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers


def test_presigned_urls_die_when_they_expire():
    s3 = aws.client("s3")
    key = f"files/{uuid.uuid4().hex}/probe"
    s3.put_object(Bucket=settings.FXFER_BUCKET, Key=key, Body=b"hello")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": settings.FXFER_BUCKET, "Key": key}, ExpiresIn=1)
    time.sleep(2.1)
    status, _ = _request("GET", url)
    assert status == 403


def test_a_tampered_presigned_url_is_refused():
    s3 = aws.client("s3")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": settings.FXFER_BUCKET, "Key": "files/a/b"}, ExpiresIn=60
    )
    status, _ = _request("GET", url.replace("files/a/b", "files/a/c"))
    assert status == 403
