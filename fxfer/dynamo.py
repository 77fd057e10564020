"""The one place that decides every PynamoDB model's table name (stage prefix) and endpoint.

    class AuditEvent(Model):
        Meta = dynamo.meta("audit-events")

The endpoint is real AWS when FXFER_DYNAMODB_ENDPOINT is empty, the local stand-in's URL otherwise.
"""

from collections.abc import Iterator

from django.conf import settings
from pynamodb.connection import Connection
from pynamodb.models import Model


def table_name(short_name: str) -> str:
    return f"{table_prefix()}{short_name}"


def table_prefix() -> str:
    return f"fxfer-{settings.FXFER_STAGE}-"


def meta(short_name: str) -> type:
    """A PynamoDB Meta class for the table `short_name` of this stage."""
    return type(
        "Meta",
        (),
        {
            "table_name": table_name(short_name),
            "host": settings.FXFER_DYNAMODB_ENDPOINT or None,
            "region": settings.FXFER_AWS_REGION,
            "billing_mode": "PAY_PER_REQUEST",
            "connect_timeout_seconds": 3,
            "read_timeout_seconds": 5,
            "max_retry_attempts": 3,
        },
    )


def all_models() -> Iterator[type[Model]]:
    """Every model of this project (their modules are imported by django.setup()), each once."""
    seen = set()
    stack = list(Model.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        name = getattr(getattr(model, "Meta", None), "table_name", "")
        if name.startswith(table_prefix()) and name not in seen:
            seen.add(name)
            yield model


def connection() -> Connection:
    """A connection for transactions across tables (same endpoint and region as the models)."""
    return Connection(
        region=settings.FXFER_AWS_REGION,
        host=settings.FXFER_DYNAMODB_ENDPOINT or None,
        connect_timeout_seconds=3,
        read_timeout_seconds=5,
        max_retry_attempts=3,
    )


def reachable() -> tuple[bool, str]:
    """One cheap GetItem (half a read unit) with a short timeout and no retries: for health checks."""
    from botocore.exceptions import BotoCoreError, ClientError

    from fxfer import aws

    try:
        aws.client("dynamodb", timeout_seconds=2, attempts=1).get_item(
            TableName=table_name("audit-chain"), Key={"chain": {"S": "healthz"}}
        )
    except ClientError as exc:
        return False, f"DynamoDB answered {exc.response.get('Error', {}).get('Code', 'error')}"
    except BotoCoreError as exc:
        return False, f"DynamoDB unreachable: {type(exc).__name__}"
    return True, "ok"
