"""boto3 clients configured from settings: the region, and a local stand-in's endpoint where one is set.

Only boundary modules (transfers/storage.py for S3, fxfer/provisioning.py for set-up) call this.

One client per (service, region, endpoint, timeout, attempts) per process, built once and reused: building a
client from a new session costs ~60 ms of CPU and several MB (botocore reads its service models again), from the
process's warm session ~4 ms. Every client of the process comes from one botocore session (`botocore_session`):
boto3's here, PynamoDB's (fxfer.dynamo) and django-ses's (fxfer.mail). Sessions are not thread-safe while they
build clients, so building happens under one lock; a client is thread-safe once built.
"""

import threading

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from django.conf import settings

_ENDPOINT_SETTINGS = {
    "s3": "FXFER_S3_ENDPOINT",
    "kms": "FXFER_KMS_ENDPOINT",
    "dynamodb": "FXFER_DYNAMODB_ENDPOINT",
    "ses": "FXFER_SES_ENDPOINT",
    "sqs": "FXFER_SQS_ENDPOINT",  # read by the operator's page (reports.operations)
}


# Error codes that mean "not now": the same call later may succeed (botocore's own retryable codes, DynamoDB's
# transaction contention, KMS's and S3's own failures).
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "TransactionInProgressException",
        "TransactionConflict",
        "TransactionConflictException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "KMSInternalException",
        "KeyUnavailableException",
    }
)


def transient(exc: BaseException | None) -> bool:
    """Whether AWS failed in a way a later attempt may not meet: no answer (a timeout, a dropped connection), a
    throttle, a 5xx, a conflicting transaction, anywhere in the exception's chain (PynamoDB wraps botocore's
    error in `cause`; services chain theirs). A validation error, a refused permission or a failed condition is
    not: retrying meets it again, so it is not retried and not reported as "try again"."""
    seen = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BotocoreConnectionError | HTTPClientError):
            return True
        if isinstance(current, ClientError):
            error = current.response.get("Error", {})
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if error.get("Code") in TRANSIENT_CODES or int(status) >= 500:
                return True
            reasons = current.response.get("CancellationReasons") or []
            if any((r or {}).get("Code") in TRANSIENT_CODES for r in reasons):
                return True
        conflict = getattr(current, "conflict", None)
        if callable(conflict) and conflict():  # fxfer.change.ChangeRefused: another transaction held an item
            return True
        pending += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return False


def endpoint_url(service: str) -> str | None:
    name = _ENDPOINT_SETTINGS.get(service)
    return (getattr(settings, name, "") or None) if name else None


# Held while a client is built, on any thread, by anyone (see _Session).
client_creation_lock = threading.RLock()
_session: botocore.session.Session | None = None
_boto3_session: boto3.session.Session | None = None
_clients: dict[tuple, object] = {}


class _Session(botocore.session.Session):
    """botocore's session, building one client at a time."""

    def create_client(self, *args, **kwargs):
        with client_creation_lock:
            return super().create_client(*args, **kwargs)


def botocore_session() -> botocore.session.Session:
    """The process's one botocore session (credentials from the environment, as boto3's default session)."""
    global _session
    if _session is None:
        with client_creation_lock:
            if _session is None:
                _session = _Session()
    return _session


def _boto3() -> boto3.session.Session:
    global _boto3_session
    if _boto3_session is None:
        with client_creation_lock:
            if _boto3_session is None:
                _boto3_session = boto3.session.Session(botocore_session=botocore_session())
    return _boto3_session


def client(
    service: str,
    *,
    timeout_seconds: float = 10,
    attempts: int = 3,
    region: str | None = None,
    endpoint: str | None = None,
):
    """The boto3 client of the process for one of our services. Short timeouts: a request path never waits on a
    stuck call. `region` and `endpoint` default to the settings (FXFER_AWS_REGION, FXFER_<SERVICE>_ENDPOINT),
    read on every call: a test that changes them gets a client for the new values, and the old one back after."""
    region = region or settings.FXFER_AWS_REGION
    endpoint = endpoint or endpoint_url(service)
    key = (service, region, endpoint, float(timeout_seconds), attempts)
    built = _clients.get(key)
    if built is None:
        with client_creation_lock:
            built = _clients.get(key)
            if built is None:
                built = _clients[key] = _build(service, region, endpoint, timeout_seconds, attempts)
    return built


def _build(service: str, region: str, endpoint: str | None, timeout_seconds: float, attempts: int):
    config = Config(
        region_name=region,
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"max_attempts": attempts, "mode": "standard"},
        # SigV4 everywhere: presigned URLs with SSE-KMS require it.
        signature_version="s3v4" if service == "s3" else None,
        # Path-style addressing for local stand-ins, which do not resolve bucket subdomains.
        s3={"addressing_style": "path" if endpoint else "virtual"} if service == "s3" else None,
    )
    return _boto3().client(service, endpoint_url=endpoint, config=config)


def signing_client(service: str):
    """A client of the process for `service` at today's region and endpoint, whatever its timeouts and attempts,
    for what only signs (no request is made): a process that has one builds no other (~5 ms of CPU on a cold
    start, whose first request's S3 client is then the one its Content-Security-Policy signs with)."""
    wanted = (service, settings.FXFER_AWS_REGION, endpoint_url(service))
    for key, built in list(_clients.items()):
        if key[:3] == wanted:
            return built
    return client(service)


def kms_key_arn(key_id: str) -> str | None:
    """The ARN of a KMS key given as alias, id or ARN (DescribeKey); None when there is no such key. The one
    place that resolves key ids: provisioning uses it to converge, transfers/storage.py to pin and check."""
    try:
        return client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NotFoundException":
            return None
        raise


def s3_browser_origins() -> list[str]:
    """The origins browsers talk to for the transfer bucket (presigned POST, part and GET URLs), for the
    Content-Security-Policy. Signing is local: no request is made."""
    from urllib.parse import urlsplit

    s3 = signing_client("s3")
    bucket = settings.FXFER_BUCKET or "bucket"
    urls = [
        s3.generate_presigned_post(bucket, "files/x/y", ExpiresIn=60)["url"],
        s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "files/x/y"}, ExpiresIn=60),
    ]
    origins = []
    for url in urls:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in origins:
            origins.append(origin)
    return origins
