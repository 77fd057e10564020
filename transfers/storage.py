"""The only module that talks to S3 (the transfer bucket)."""

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from fxfer import aws


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
