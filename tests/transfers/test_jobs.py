"""S3 ObjectCreated notifications reach the upload-completion service with the key decoded."""

from django.conf import settings

from transfers.jobs import expire_sweep, on_object_created


def _event(bucket: str, key: str, size: int = 10) -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": size},
                },
            }
        ]
    }


def test_keys_arrive_url_encoded_and_are_decoded():
    # S3 encodes keys in notifications: spaces as "+", other bytes as %XX (UTF-8).
    result = on_object_created(_event(settings.FXFER_BUCKET, "files/t1/a+b%E3%81%82"), None)
    assert result == {"records": [{"key": "files/t1/a bあ", "outcome": "unknown_key"}]}


def test_objects_of_another_bucket_are_ignored():
    result = on_object_created(_event("someone-elses-bucket", "files/x"), None)
    assert result["records"][0]["outcome"] == "foreign_bucket"


def test_sweep_uses_the_scheduled_time():
    result = expire_sweep({"detail-type": "Scheduled Event", "time": "2026-11-28T03:00:00Z"}, None)
    assert result["started_at"] == "2026-11-28T03:00:00+00:00"
