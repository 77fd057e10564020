"""Deleting a file's object for good (every version and delete marker) and Object Lock legal holds, against
moto's S3 with the bucket as provisioning creates it (versioning on, Object Lock enabled, the lifecycle backstop)."""

import pytest
from botocore.exceptions import ClientError
from django.conf import settings

from fxfer import aws
from fxfer.provisioning import FILES_PREFIX
from transfers import storage

KEY = "files/AAAAAAAAAAAAAAAA/BBBBBBBBBBBBBBBB"


def _s3():
    return aws.client("s3")


def _put(key: str, body: bytes) -> str:
    return _s3().put_object(Bucket=settings.FXFER_BUCKET, Key=key, Body=body)["VersionId"]


def _listed(key: str) -> list:
    page = _s3().list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


def test_every_version_and_delete_marker_is_deleted_and_reported():
    first = _put(KEY, b"first")
    second = _put(KEY, b"second!")
    marker = _s3().delete_object(Bucket=settings.FXFER_BUCKET, Key=KEY)["VersionId"]  # a plain delete only hides
    assert _listed(KEY)

    deleted = storage.object_delete_all_versions(key=KEY)

    assert set(deleted.version_ids) == {first, second}
    assert deleted.delete_markers == (marker,)
    assert deleted.size == len(b"second!") and deleted.etag
    assert not deleted.held
    assert _listed(KEY) == []


def test_a_key_with_nothing_stored_is_fine():
    deleted = storage.object_delete_all_versions(key=KEY)
    assert deleted.version_ids == () and deleted.delete_markers == () and not deleted.held


def test_only_the_exact_key_is_touched():
    _put(KEY, b"one")
    neighbour = KEY + "C"
    _put(neighbour, b"other")
    storage.object_delete_all_versions(key=KEY)
    assert _listed(KEY) == []
    assert len(_listed(neighbour)) == 1
    storage.object_delete_all_versions(key=neighbour)


def test_a_held_object_is_never_reported_gone_and_goes_after_release():
    version = _put(KEY, b"evidence")
    assert storage.legal_hold(key=KEY, on=True) == 1
    assert storage.legal_hold_status(key=KEY, version_id=version) == "ON"

    deleted = storage.object_delete_all_versions(key=KEY)
    assert deleted.held and deleted.version_ids == ()
    assert [v["VersionId"] for v in _listed(KEY)] == [version]

    storage.legal_hold(key=KEY, on=False)
    assert storage.legal_hold_status(key=KEY, version_id=version) == "OFF"
    deleted = storage.object_delete_all_versions(key=KEY)
    assert not deleted.held and deleted.version_ids == (version,)
    assert _listed(KEY) == []


def test_the_lifecycle_configuration_cannot_delete_held_objects():
    """The lifecycle rule's only deletion actions are Expiration (on a versioned bucket: a delete marker, the
    data stays as a noncurrent version) and NoncurrentVersionExpiration, which deletes that version by id; a
    version under legal hold refuses exactly that deletion, so held files survive the backstop."""
    s3 = _s3()
    bucket = settings.FXFER_BUCKET
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    files_rules = [r for r in rules if r.get("Filter", {}).get("Prefix") == FILES_PREFIX]
    assert len(files_rules) == 1
    rule = files_rules[0]
    assert rule["Expiration"]["Days"] == settings.FXFER_MAX_RETENTION_DAYS + 1
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    deleting = {"Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"}
    assert all(set(r) & deleting for r in rules)  # nothing else in the configuration deletes
    assert not any("Transitions" in r or "NoncurrentVersionTransitions" in r for r in rules)

    version = _put(KEY, b"evidence")
    storage.legal_hold(key=KEY, on=True)
    # What Expiration does: a delete marker on top; the held data is now a noncurrent version.
    s3.delete_object(Bucket=bucket, Key=KEY)
    # What NoncurrentVersionExpiration does a day later: delete that version by id. S3 refuses.
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=KEY, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key=KEY, VersionId=version)["Body"].read() == b"evidence"
