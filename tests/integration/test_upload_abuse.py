"""Upload abuse attacked through the employee's uploader endpoints, against LocalStack's S3 (which checks
presigned-URL signatures, so a signed Content-Length, and POST policy conditions): multipart parts of another
length than the server planned, uploads nobody completes, versions a re-used POST policy leaves, and the
type an uploader claims for what recipients later download. Started and provisioned by
`python -m devtools.stack --provision`; the stand-ins are shared by every test, so each one uses its own keys."""

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings

from fxfer import aws
from reports.models import AuditEvent
from tests.transfers.conftest import checksums_of, crc64nvme
from tests.transfers.test_views import alice_id, sign_in
from transfers import services, storage
from transfers.models import File, SweepCursor
from transfers.policy import FileDeclared
from transfers.services.expiry import ORPHAN_UPLOADS_CURSOR, orphan_uploads_sweep

pytestmark = pytest.mark.integration

MiB = 1024**2
BIG = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: parts of 5, 5 and 2 MiB


@functools.cache
def _big_sums() -> dict[str, str]:
    """BIG's SHA-256 and whole CRC-64/NVME, as the uploader sends them with completion."""
    return checksums_of(BIG, real_crc=True)


class Alice:
    email = "alice@example.com"
    display_name = "Alice"

    def __init__(self) -> None:
        self.id = alice_id()


@pytest.fixture
def small_parts(settings):
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB


@pytest.fixture
def browser(client):
    """Alice's browser, signed in through SSO."""
    sign_in(client)
    return client


def _create(*files: FileDeclared) -> services.TransferCreated:
    return services.transfer_create(sender=Alice(), recipients=["bob@partner.example"], files=list(files))


def _call(client, created, action: str, data: dict | None = None, index: int = 0):
    url = f"/transfers/{created.transfer_id}/files/{created.files[index].file_id}/{action}"
    response = client.post(url, json.dumps(data or {}), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def _uploads(key: str) -> list[str]:
    listed = aws.client("s3").list_multipart_uploads(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [u["UploadId"] for u in listed.get("Uploads", []) if u["Key"] == key]


def _versions(key: str) -> list[str]:
    listed = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v["VersionId"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []) if v["Key"] == key]


def _post(authorized: dict, body: bytes, *, part_type: str = "application/octet-stream", **field_changes):
    fields = {k: v for k, v in {**authorized["fields"], **field_changes}.items() if v is not None}
    return requests.post(authorized["url"], data=fields, files={"file": ("x", body, part_type)}, timeout=30)


@functools.cache
def _big_crcs() -> dict[int, str]:
    """Each part's CRC-64/NVME of BIG in 5 MiB parts (what the uploader's worker computes)."""
    return {n: crc64nvme(BIG[(n - 1) * 5 * MiB : n * 5 * MiB]) for n in (1, 2, 3)}


def _part_urls(client, created) -> tuple[dict, dict[int, str]]:
    """Every part's URL for BIG, signed for its CRC-64/NVME, in batches of two as the uploader asks."""
    authorized = _call(client, created, "authorize")
    crcs = {str(n): crc for n, crc in _big_crcs().items()}
    first = _call(client, created, "parts", {"uploadId": authorized["uploadId"], "parts": {n: crcs[n] for n in "12"}})
    more = _call(client, created, "parts", {"uploadId": authorized["uploadId"], "parts": {"3": crcs["3"]}})
    return authorized, {int(n): url for n, url in {**first["partUrls"], **more["partUrls"]}.items()}


def _put(url: str, number: int, data: bytes) -> requests.Response:
    """A part PUT with the CRC header its URL was signed for (BIG's part `number`)."""
    headers = {"x-amz-checksum-crc64nvme": _big_crcs()[number]}
    return requests.put(url, data=data, headers=headers, timeout=60)


# --- item 6: a part URL takes exactly its part's length ------------------------------------------------------------


def test_a_part_url_refuses_more_or_fewer_bytes_than_its_part_and_takes_exactly_them(browser, small_parts):
    created = _create(FileDeclared("big.bin", len(BIG)))
    authorized, urls = _part_urls(browser, created)
    assert authorized["partSize"] == 5 * MiB and authorized["partCount"] == 3
    # A guest with a small allowance used to park 5 GiB per part URL: S3 now refuses any other length.
    assert _put(urls[1], 1, b"x" * (6 * MiB)).status_code == 403
    assert _put(urls[1], 1, b"x" * (5 * MiB - 1)).status_code == 403
    assert _put(urls[3], 3, b"x" * (5 * MiB)).status_code == 403  # the last part is shorter
    assert _call(browser, created, "authorize")["partsDone"] == []  # S3 stored none of them
    # What the uploader (Uppy, slicing the file at the server's part size) sends is exactly what is signed.
    for number, url in urls.items():
        chunk = BIG[(number - 1) * 5 * MiB : number * 5 * MiB]
        assert _put(url, number, chunk).status_code == 200
    verified = _call(browser, created, "complete", {"uploadId": authorized["uploadId"], **_big_sums()})
    assert (verified["outcome"], verified["released"]) == ("verified", True)
    assert storage.object_head(key=created.files[0].key).size == len(BIG)


def test_cancelling_aborts_the_upload_at_s3_and_its_part_urls_take_nothing_more(browser, small_parts):
    created = _create(FileDeclared("big.bin", len(BIG)), FileDeclared("a.pdf", 11))
    _authorized, urls = _part_urls(browser, created)
    assert _put(urls[1], 1, BIG[: 5 * MiB]).status_code == 200
    assert _call(browser, created, "cancel")["outcome"] == "cancelled"
    assert _uploads(created.files[0].key) == []
    assert _put(urls[2], 2, BIG[5 * MiB : 10 * MiB]).status_code == 404  # NoSuchUpload


def test_a_refused_upload_is_aborted_and_uploading_again_leaves_only_the_new_one(browser, small_parts):
    created = _create(FileDeclared("big.bin", len(BIG)))
    key = created.files[0].key
    first, urls = _part_urls(browser, created)
    for number in (1, 2):
        assert _put(urls[number], number, BIG[(number - 1) * 5 * MiB : number * 5 * MiB]).ok
    # Part 3 never arrives and a part 4 no URL was signed for cannot be added: completing now is "incomplete".
    response = browser.post(
        f"/transfers/{created.transfer_id}/files/{created.files[0].file_id}/complete",
        json.dumps({"uploadId": first["uploadId"], **_big_sums()}),
        content_type="application/json",
    )
    assert response.status_code == 409 and response.json()["error"] == "upload_incomplete"
    # The file refused (another object at its key, as a re-used policy could leave it): its upload is aborted.
    aws.client("s3").put_object(Bucket=settings.FXFER_BUCKET, Key=key, Body=b"not the declared file")
    assert services.file_verify(key=key).outcome == "refused"
    assert _uploads(key) == [] and _versions(key) == []
    again = _call(browser, created, "authorize")
    assert again["uploadId"] != first["uploadId"] and _uploads(key) == [again["uploadId"]]


# --- item 6: the sweep aborts uploads no live record owns, a page at a time -------------------------------------


def test_the_sweep_aborts_orphan_uploads_page_by_page_but_never_a_young_one(browser, small_parts, settings):
    created = _create(FileDeclared("big.bin", len(BIG)))
    key = created.files[0].key
    live = _call(browser, created, "authorize")["uploadId"]
    s3 = aws.client("s3")
    # Uploads no record owns: one at the file's own key (a CreateMultipartUpload whose answer was lost), and
    # several at keys of files that do not exist.
    strays = [f"files/{created.transfer_id}/gone{uuid.uuid4().hex[:12]}" for _ in range(2)]
    orphans = {(key, s3.create_multipart_upload(Bucket=settings.FXFER_BUCKET, Key=key)["UploadId"])}
    for stray in strays:
        for _ in range(2):
            orphans.add((stray, s3.create_multipart_upload(Bucket=settings.FXFER_BUCKET, Key=stray)["UploadId"]))
    SweepCursor(name=ORPHAN_UPLOADS_CURSOR).delete()

    now = datetime.now(UTC)
    settings.FXFER_ORPHAN_KEYS_PER_RUN = 1000
    orphan_uploads_sweep(now=now)  # within the grace period: an upload may be being authorized right now
    assert set(_uploads(key)) == {live} | {u for k, u in orphans if k == key}
    assert all(_uploads(stray) for stray in strays)

    # An hour and more later, two uploads a page: the cursor walks the listing (keys, then upload ids within
    # a key) until every orphan is aborted, and the upload being uploaded stays.
    settings.FXFER_ORPHAN_KEYS_PER_RUN = 2
    later = now + timedelta(hours=2)
    for run in range(200):
        orphan_uploads_sweep(now=later + timedelta(minutes=run))
        if not any(_uploads(stray) for stray in strays) and _uploads(key) == [live]:
            break
    assert run >= 2, "one page held every upload: the cursor was never used"
    assert _uploads(key) == [live]
    assert all(_uploads(stray) == [] for stray in strays)
    recorded = {
        (u["key"], u["upload_id"])
        for e in AuditEvent.scan(AuditEvent.action == "upload.orphans_aborted")
        for u in e.details["uploads"]
    }
    assert orphans <= recorded
    assert File.get(created.transfer_id, created.files[0].file_id).multipart_upload_id == live


# --- item 7: a re-used POST policy ---------------------------------------------------------------------------------


def test_a_reused_post_policy_leaves_nothing_but_the_verified_version(browser):
    body = b"quarterly figures, final\n"
    created = _create(FileDeclared("a.pdf", len(body)), FileDeclared("b.pdf", len(body)))
    authorized = _call(browser, created, "authorize")
    assert _post(authorized, b"an earlier take, other size").status_code == 400  # the size is pinned
    assert _post(authorized, body.upper()).status_code == 201
    assert _post(authorized, body).status_code == 201  # the same policy, again, within its minutes
    assert len(_versions(created.files[0].key)) == 2
    assert _call(browser, created, "done")["outcome"] == "verified"
    file = File.get(created.transfer_id, created.files[0].file_id)
    assert _versions(created.files[0].key) == [file.version_id]
    # The other file: three takes with one policy, then cancelled; every version goes, not only the newest.
    other = _call(browser, created, "authorize", index=1)
    for _ in range(3):
        assert _post(other, body).status_code == 201
    assert _call(browser, created, "cancel", index=1)["outcome"] == "cancelled"
    assert _versions(created.files[1].key) == []


# --- item 11: what a recipient's browser gets, whatever the uploader claimed ---------------------------------------


def test_the_policy_pins_the_stored_type_and_the_download_is_an_octet_stream_attachment(browser):
    page = b"<html><script>alert(document.domain)</script></html>"
    created = _create(FileDeclared("invoice.html", len(page), content_type="text/html"))
    authorized = _call(browser, created, "authorize")
    assert authorized["fields"]["Content-Type"] == "application/octet-stream"
    refused = _post(authorized, page, **{"Content-Type": "text/html"})  # the uploader's own claim
    assert refused.status_code == 403, refused.text
    assert _post(authorized, page, part_type="text/html").status_code == 201
    assert _call(browser, created, "done")["outcome"] == "verified"
    file = File.get(created.transfer_id, created.files[0].file_id)
    stored = aws.client("s3").head_object(Bucket=settings.FXFER_BUCKET, Key=file.s3_key)
    assert stored["ContentType"] == "application/octet-stream"
    response = requests.get(
        storage.download_url(key=file.s3_key, version_id=file.version_id, filename=file.name), timeout=10
    )
    assert response.status_code == 200 and response.content == page
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="invoice.html"; ')


def test_a_multipart_file_is_stored_and_downloaded_as_an_octet_stream_attachment(browser, small_parts):
    created = _create(FileDeclared("clip.svg", len(BIG), content_type="image/svg+xml"))
    authorized, urls = _part_urls(browser, created)
    for number, url in urls.items():
        assert _put(url, number, BIG[(number - 1) * 5 * MiB : number * 5 * MiB]).ok
    assert _call(browser, created, "complete", {"uploadId": authorized["uploadId"], **_big_sums()})["outcome"] == (
        "verified"
    )
    file = File.get(created.transfer_id, created.files[0].file_id)
    response = requests.get(
        storage.download_url(key=file.s3_key, version_id=file.version_id, filename=file.name),
        headers={"Range": "bytes=0-15"},
        timeout=10,
    )
    assert response.status_code == 206
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment; ")


def test_stored_metadata_cannot_add_nosniff_so_the_defence_is_the_type_and_attachment():
    # Why the download carries no X-Content-Type-Options: S3 keeps only a few system headers (Content-Type,
    # -Disposition, -Encoding, -Language, Cache-Control, Expires); anything else comes back as x-amz-meta-*.
    key = f"files/metadata{uuid.uuid4().hex[:8]}/probe{uuid.uuid4().hex[:11]}"
    s3 = aws.client("s3")
    s3.put_object(Bucket=settings.FXFER_BUCKET, Key=key, Body=b"x", Metadata={"X-Content-Type-Options": "nosniff"})
    try:
        response = requests.get(storage.download_url(key=key, version_id=None, filename="x.bin"), timeout=10)
        assert response.status_code == 200
        assert "X-Content-Type-Options" not in response.headers
        assert response.headers["x-amz-meta-x-content-type-options"] == "nosniff"
    finally:
        storage.object_delete_all_versions(key=key)
