"""The only module that talks to S3 (the transfer bucket).

Browsers upload and download directly: this module signs what they may do (presigned POST, presigned part
URLs, presigned GET) and does the server-side steps (create/complete/abort multipart, HeadObject, delete).
No file byte passes through it.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from fxfer import aws

SSE = "aws:kms"
# Downloads are always served as opaque bytes: with `attachment`, browsers neither sniff nor render them.
DOWNLOAD_CONTENT_TYPE = "application/octet-stream"
_KEY = re.compile(r"^files/(?P<parent_id>[A-Za-z0-9_-]{8,64})/(?P<file_id>[A-Za-z0-9_-]{8,64})$")
_key_arns: dict[tuple[str, str | None], str] = {}


def _s3(**kwargs):
    return aws.client("s3", **kwargs)


def bucket_reachable() -> tuple[bool, str]:
    """HeadBucket on the transfer bucket with a short timeout and no retries: for health checks."""
    try:
        _s3(timeout_seconds=2, attempts=1).head_bucket(Bucket=settings.FXFER_BUCKET)
    except ClientError as exc:
        return False, f"S3 answered {exc.response.get('Error', {}).get('Code', 'error')}"
    except BotoCoreError as exc:
        return False, f"S3 unreachable: {type(exc).__name__}"
    return True, "ok"


# --- keys and the KMS key ------------------------------------------------------------------------------------


def file_key(*, parent_id: str, file_id: str) -> str:
    """The S3 key of a file: from server-generated ids only, never from the file's name."""
    key = f"files/{parent_id}/{file_id}"
    if not _KEY.match(key):
        raise ValueError(f"not a server-generated file key: {key!r}")
    return key


def parse_file_key(key: str) -> tuple[str, str] | None:
    """(parent id, file id) of a key this app generated; None for any other key."""
    match = _KEY.match(key)
    return (match["parent_id"], match["file_id"]) if match else None


def kms_key_arn() -> str:
    """The ARN of settings.FXFER_KMS_KEY_ID (often an alias), looked up once per process and endpoint."""
    cache_key = (settings.FXFER_KMS_KEY_ID, aws.endpoint_url("kms"))
    if cache_key not in _key_arns:
        arn = aws.kms_key_arn(settings.FXFER_KMS_KEY_ID)
        if not arn:
            raise RuntimeError(f"The KMS key {settings.FXFER_KMS_KEY_ID} does not exist (run `manage.py provision`).")
        _key_arns[cache_key] = arn
    return _key_arns[cache_key]


def forget_kms_key_arn() -> None:
    """Drop the cached ARN (tests recreate the key for every test)."""
    _key_arns.clear()


# --- uploads -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]
    expires_at: datetime


def presigned_post(
    *, key: str, size: int, sha256: str | None = None, now: datetime | None = None, until: datetime | None = None
) -> PresignedPost:
    """A POST policy for exactly one object: this key, exactly `size` bytes, SSE-KMS with our key, stored as
    application/octet-stream, a short expiry (never past `until`), and (when the browser declared one) the
    SHA-256 S3 must find in the body."""
    expires_in = settings.FXFER_UPLOAD_POLICY_SECONDS
    if until is not None:
        expires_in = max(1, min(expires_in, int((until - (now or datetime.now(UTC))).total_seconds())))
    fields = {
        "x-amz-server-side-encryption": SSE,
        "x-amz-server-side-encryption-aws-kms-key-id": kms_key_arn(),
        # Stored as opaque bytes whatever the uploader claims (a text/html "report" stays inert even if some
        # day it were served without our download overrides); the policy refuses any other value.
        "Content-Type": DOWNLOAD_CONTENT_TYPE,
        "success_action_status": "201",
    }
    if sha256:
        fields["x-amz-checksum-algorithm"] = "SHA256"
        fields["x-amz-checksum-sha256"] = sha256
    # botocore adds {"bucket": ...} and {"key": key} itself; every other field is pinned to its exact value.
    conditions: list = [{name: value} for name, value in fields.items()]
    conditions.append(["content-length-range", size, size])
    post = _s3().generate_presigned_post(
        Bucket=settings.FXFER_BUCKET, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
    )
    return PresignedPost(
        url=post["url"], fields=post["fields"], expires_at=(now or datetime.now(UTC)) + timedelta(seconds=expires_in)
    )


# Multipart uploads carry S3's full-object checksum: the CRC-64/NVME of the whole file, which S3 computes from
# the parts' own CRCs (each checked against the bytes of its part) and compares with the one the browser gives
# at completion, so the stored object is the file the browser read, not just bytes of the right length.
MULTIPART_CHECKSUM = "CRC64NVME"
FULL_OBJECT = "FULL_OBJECT"


def multipart_create(*, key: str) -> str:
    """Start a multipart upload (server side, so it carries SSE-KMS with our key and the full-object
    CRC-64/NVME checksum every part must carry); its upload id."""
    response = _s3().create_multipart_upload(
        Bucket=settings.FXFER_BUCKET,
        Key=key,
        ServerSideEncryption=SSE,
        SSEKMSKeyId=kms_key_arn(),
        BucketKeyEnabled=True,
        ContentType=DOWNLOAD_CONTENT_TYPE,
        ChecksumAlgorithm=MULTIPART_CHECKSUM,
        ChecksumType=FULL_OBJECT,
    )
    return response["UploadId"]


def multipart_part_urls(
    *, key: str, upload_id: str, part_sizes: dict[int, int], part_checksums: dict[int, str]
) -> dict[int, str]:
    """Presigned UploadPart URLs for a batch of parts, each valid FXFER_PART_URL_SECONDS, each for exactly its
    planned length (part number → bytes) and its CRC-64/NVME (part number → base64): both are signed headers,
    so S3 refuses a part of any other length or content, and nobody can park more bytes in an upload than the
    file they declared. The browser sends the checksum as `x-amz-checksum-crc64nvme`."""
    s3 = _s3()
    return {
        number: s3.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": settings.FXFER_BUCKET,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": size,
                "ChecksumCRC64NVME": part_checksums[number],
            },
            ExpiresIn=settings.FXFER_PART_URL_SECONDS,
        )
        for number, size in part_sizes.items()
    }


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    size: int
    etag: str
    checksum_crc64nvme: str | None = None  # base64, as S3 lists it (absent on stand-ins that do not keep it)


def multipart_parts(*, key: str, upload_id: str) -> list[UploadedPart] | None:
    """Every part S3 holds for the upload, in order; None when the upload no longer exists."""
    s3 = _s3()
    parts: list[UploadedPart] = []
    marker = 0
    while True:
        try:
            page = s3.list_parts(
                Bucket=settings.FXFER_BUCKET, Key=key, UploadId=upload_id, PartNumberMarker=marker, MaxParts=1000
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"NoSuchUpload", "404"}:
                return None
            raise
        parts.extend(
            UploadedPart(
                part_number=p["PartNumber"],
                size=p["Size"],
                etag=p["ETag"],
                checksum_crc64nvme=p.get("ChecksumCRC64NVME"),
            )
            for p in page.get("Parts", [])
        )
        if not page.get("IsTruncated"):
            return parts
        marker = int(page["NextPartNumberMarker"])


def multipart_complete(
    *, key: str, upload_id: str, parts: list[UploadedPart], checksum_crc64nvme: str | None = None
) -> str:
    """Assemble the object from exactly these parts; its ETag. With `checksum_crc64nvme` (the whole file's
    CRC-64/NVME, base64) S3 refuses to assemble an object whose full-object checksum differs (BadDigest)."""
    completed = []
    for p in parts:
        part = {"PartNumber": p.part_number, "ETag": p.etag}
        if p.checksum_crc64nvme:
            part["ChecksumCRC64NVME"] = p.checksum_crc64nvme
        completed.append(part)
    params = {
        "Bucket": settings.FXFER_BUCKET,
        "Key": key,
        "UploadId": upload_id,
        "MultipartUpload": {"Parts": completed},
    }
    if checksum_crc64nvme:
        params.update(ChecksumCRC64NVME=checksum_crc64nvme, ChecksumType=FULL_OBJECT)
    return _s3().complete_multipart_upload(**params)["ETag"]


def multipart_abort(*, key: str, upload_id: str) -> None:
    """Abort an upload and free its parts; an upload that is already gone is fine."""
    try:
        _s3().abort_multipart_upload(Bucket=settings.FXFER_BUCKET, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"NoSuchUpload", "404"}:
            raise


@dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class UploadsPage:
    uploads: tuple[MultipartUpload, ...]
    next_key_marker: str | None  # None: the listing is complete
    next_upload_id_marker: str | None


def multipart_uploads_page(
    *, prefix: str, key_marker: str | None = None, upload_id_marker: str | None = None, limit: int = 1000
) -> UploadsPage:
    """One page of ListMultipartUploads under `prefix` (uploads started and neither completed nor aborted), in
    key order and, within a key, in the order they were started."""
    params = {"Bucket": settings.FXFER_BUCKET, "Prefix": prefix, "MaxUploads": limit}
    if key_marker:
        params["KeyMarker"] = key_marker
        if upload_id_marker:
            params["UploadIdMarker"] = upload_id_marker
    try:
        page = _s3().list_multipart_uploads(**params)
    except ClientError as exc:
        # Some S3s refuse a marker naming an upload that has ended since (completed or aborted): go on after
        # the key instead; that key's later uploads come round again in the next pass.
        if "UploadIdMarker" not in params or exc.response.get("Error", {}).get("Code") != "InvalidArgument":
            raise
        del params["UploadIdMarker"]
        page = _s3().list_multipart_uploads(**params)
    truncated = bool(page.get("IsTruncated"))
    return UploadsPage(
        uploads=tuple(
            MultipartUpload(key=u["Key"], upload_id=u["UploadId"], initiated=u["Initiated"].astimezone(UTC))
            for u in page.get("Uploads", [])
        ),
        next_key_marker=page.get("NextKeyMarker") or None if truncated else None,
        next_upload_id_marker=page.get("NextUploadIdMarker") or None if truncated else None,
    )


# --- verification and deletion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str
    encryption: str | None
    kms_key_id: str | None
    checksum_sha256: str | None
    version_id: str | None
    checksum_crc64nvme: str | None = None  # base64: S3's CRC-64/NVME of the whole object
    checksum_type: str | None = None  # "FULL_OBJECT" or "COMPOSITE"


def object_head(*, key: str, version_id: str | None = None) -> ObjectHead | None:
    """What S3 says about the object (its current version, or the given one); None when there is none."""
    params = {"Bucket": settings.FXFER_BUCKET, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id:
        params["VersionId"] = version_id
    try:
        head = _s3().head_object(**params)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound", "NoSuchVersion", "400"}:
            return None
        raise
    return ObjectHead(
        size=int(head["ContentLength"]),
        etag=head.get("ETag", ""),
        encryption=head.get("ServerSideEncryption"),
        kms_key_id=head.get("SSEKMSKeyId"),
        checksum_sha256=head.get("ChecksumSHA256"),
        version_id=head.get("VersionId"),
        checksum_crc64nvme=head.get("ChecksumCRC64NVME"),
        checksum_type=head.get("ChecksumType"),
    )


def object_version_delete(*, key: str, version_id: str | None) -> None:
    """Delete one version for good (with versioning on, a plain delete would only hide it behind a marker)."""
    params = {"Bucket": settings.FXFER_BUCKET, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    _s3().delete_object(**params)


# --- deletion receipts and legal hold -------------------------------------------------------------------------

# A legal hold (or missing permission) makes S3 refuse a version's deletion: that version is held, never gone.
_HELD_CODES = {"AccessDenied", "403"}
_GONE_CODES = {"NoSuchKey", "NoSuchVersion", "404"}


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str | None
    size: int
    etag: str | None
    delete_marker: bool


@dataclass(frozen=True)
class VersionsDeleted:
    """What one key's deletion removed (a receipt's facts) and whether S3 refused any version (held)."""

    key: str
    version_ids: tuple[str, ...]  # object versions removed for good
    delete_markers: tuple[str, ...]
    size: int | None  # of the newest version removed
    etag: str | None
    held: bool


@dataclass(frozen=True)
class VersionsPage:
    versions: tuple[ObjectVersion, ...]
    next_key_marker: str | None  # None: the listing is complete
    next_version_marker: str | None


def _version(item: dict, *, delete_marker: bool) -> ObjectVersion:
    version_id = item.get("VersionId")
    return ObjectVersion(
        key=item["Key"],
        version_id=None if version_id in (None, "null") else version_id,
        size=int(item.get("Size", 0)),
        etag=item.get("ETag"),
        delete_marker=delete_marker,
    )


def versions_page(
    *, prefix: str, key_marker: str | None = None, version_marker: str | None = None, limit: int = 1000
) -> VersionsPage:
    """One page of ListObjectVersions under `prefix` (versions and delete markers), in key order."""
    params = {"Bucket": settings.FXFER_BUCKET, "Prefix": prefix, "MaxKeys": limit}
    if key_marker:
        params["KeyMarker"] = key_marker
        if version_marker:
            params["VersionIdMarker"] = version_marker
    page = _s3().list_object_versions(**params)
    versions = [_version(v, delete_marker=False) for v in page.get("Versions", [])]
    versions += [_version(m, delete_marker=True) for m in page.get("DeleteMarkers", [])]
    truncated = bool(page.get("IsTruncated"))
    return VersionsPage(
        versions=tuple(versions),
        next_key_marker=page.get("NextKeyMarker") if truncated else None,
        next_version_marker=page.get("NextVersionIdMarker") if truncated else None,
    )


def object_versions(*, key: str) -> list[ObjectVersion]:
    """Every version and delete marker of exactly this key, newest first among the versions."""
    found: list[ObjectVersion] = []
    key_marker = version_marker = None
    while True:
        page = versions_page(prefix=key, key_marker=key_marker, version_marker=version_marker)
        found.extend(v for v in page.versions if v.key == key)
        if page.next_key_marker is None:
            return found
        key_marker, version_marker = page.next_key_marker, page.next_version_marker


def object_delete_all_versions(*, key: str) -> VersionsDeleted:
    """Delete every version and delete marker of the key for good. A version already gone is fine; a version
    S3 refuses to delete (Object Lock legal hold) leaves `held` true and is never reported as deleted."""
    s3 = _s3()
    removed: list[ObjectVersion] = []
    held = False
    for version in object_versions(key=key):
        params = {"Bucket": settings.FXFER_BUCKET, "Key": key}
        if version.version_id:
            params["VersionId"] = version.version_id
        try:
            s3.delete_object(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _HELD_CODES:
                held = True
                continue
            if code not in _GONE_CODES:
                raise
        removed.append(version)
    contents = [v for v in removed if not v.delete_marker]
    return VersionsDeleted(
        key=key,
        version_ids=tuple(v.version_id or "null" for v in contents),
        delete_markers=tuple(v.version_id or "null" for v in removed if v.delete_marker),
        size=contents[0].size if contents else None,
        etag=contents[0].etag if contents else None,
        held=held,
    )


def object_versions_delete(*, key: str, version_ids: list[str], delete_markers: list[str] = ()) -> VersionsDeleted:
    """Delete exactly these versions of the key for good (the ids a deletion claim recorded before deleting:
    "null" names the unversioned one). A version already gone counts as deleted (a run before this one
    deleted it); a version S3 refuses to delete (legal hold) sets `held` and is not reported deleted."""
    s3 = _s3()
    removed: list[str] = []
    markers: list[str] = []
    held = False
    for version_id, is_marker in [(v, False) for v in version_ids] + [(m, True) for m in delete_markers]:
        # With versioning on, a delete without a version id only adds a marker: always name the version.
        params = {"Bucket": settings.FXFER_BUCKET, "Key": key, "VersionId": version_id or "null"}
        try:
            s3.delete_object(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _HELD_CODES:
                held = True
                continue
            if code not in _GONE_CODES:
                raise
        (markers if is_marker else removed).append(version_id or "null")
    return VersionsDeleted(
        key=key, version_ids=tuple(removed), delete_markers=tuple(markers), size=None, etag=None, held=held
    )


def legal_hold(*, key: str, on: bool) -> int:
    """Put (or lift) an Object Lock legal hold on every version of the key; how many versions it touched.
    A held version can be deleted neither by us nor by the lifecycle rule until the hold is lifted."""
    s3 = _s3()
    touched = 0
    for version in object_versions(key=key):
        if version.delete_marker:
            continue
        params = {"Bucket": settings.FXFER_BUCKET, "Key": key, "LegalHold": {"Status": "ON" if on else "OFF"}}
        if version.version_id:
            params["VersionId"] = version.version_id
        s3.put_object_legal_hold(**params)
        touched += 1
    return touched


def legal_hold_status(*, key: str, version_id: str | None) -> str | None:
    """ "ON" or "OFF" as S3 has it for one version; None when S3 has no legal hold recorded for it."""
    params = {"Bucket": settings.FXFER_BUCKET, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    try:
        return _s3().get_object_legal_hold(**params)["LegalHold"]["Status"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchObjectLockConfiguration", "InvalidRequest"}:
            return None
        raise


# --- downloads -----------------------------------------------------------------------------------------------


def content_disposition(filename: str) -> str:
    """RFC 6266 `attachment` with an ASCII fallback and the exact UTF-8 name (RFC 8187) for every browser."""
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, ""

    def ascii_only(text: str) -> str:
        # Accents fold to their letters (Résumé → Resume); a run of other non-ASCII text (Japanese) becomes one
        # "_" so the ASCII words around it stay apart: 見積書_2026年度 → _2026_.
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
        text = re.sub(r"[^\x20-\x7e]+", "_", text)
        # Quotes, backslashes and separators would break out of the quoted-string or the header.
        text = re.sub(r'["\\;]', "_", text)
        return re.sub(r"_{2,}", "_", text).strip("._ ")

    fallback_stem = ascii_only(stem)
    # Digits alone ("2026") say nothing of the file; a name that kept no letter reads download_2026.pdf.
    if not re.search(r"[A-Za-z]", fallback_stem):
        fallback_stem = f"download_{fallback_stem}" if fallback_stem else "download"
    fallback_extension = ascii_only(extension)
    fallback = f"{fallback_stem}.{fallback_extension}" if fallback_extension else fallback_stem
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def download_url(*, key: str, version_id: str | None, filename: str) -> str:
    """A presigned GET of the verified version, valid FXFER_DOWNLOAD_URL_SECONDS, always as an attachment of
    type application/octet-stream.

    S3 cannot add `X-Content-Type-Options: nosniff` to a presigned GET; an opaque type plus `attachment` is
    the defence: the browser saves the bytes and never renders or sniffs them as a page of the bucket.
    """
    params = {
        "Bucket": settings.FXFER_BUCKET,
        "Key": key,
        "ResponseContentDisposition": content_disposition(filename),
        "ResponseContentType": DOWNLOAD_CONTENT_TYPE,
        "ResponseCacheControl": "no-store",
    }
    if version_id:
        params["VersionId"] = version_id
    return _s3().generate_presigned_url("get_object", Params=params, ExpiresIn=settings.FXFER_DOWNLOAD_URL_SECONDS)


# --- the malware scan (transfers.services.scanning) -----------------------------------------------------------


def object_tag(*, key: str, version_id: str | None, name: str) -> str | None:
    """The value of one tag of the object version (GuardDuty writes its verdict as a tag); None when it has no
    such tag or no longer exists."""
    params = {"Bucket": settings.FXFER_BUCKET, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    try:
        tags = _s3().get_object_tagging(**params).get("TagSet", [])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}:
            return None
        raise
    return next((tag["Value"] for tag in tags if tag.get("Key") == name), None)


def object_chunks(*, key: str, version_id: str | None, chunk_bytes: int = 1024**2):
    """The bytes of one object version, a chunk at a time (the local scanner stand-in reads them; nothing in
    production reads a file's bytes)."""
    params = {"Bucket": settings.FXFER_BUCKET, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    body = _s3().get_object(**params)["Body"]
    try:
        yield from body.iter_chunks(chunk_bytes)
    finally:
        body.close()
