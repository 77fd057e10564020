"""The one place that decides every PynamoDB model's table name (stage prefix) and endpoint.

    class AuditEvent(Model):
        Meta = dynamo.meta("audit-events")

The endpoint is real AWS when FXFER_DYNAMODB_ENDPOINT is empty, the local stand-in's URL otherwise.

Every PynamoDB connection of the process builds its botocore client from fxfer.aws's one botocore session, under
its lock: PynamoDB would start a new session per connection and thread (~60 ms of CPU each, for every model
class and for every transaction's connection). Transactions share one connection per endpoint (`connection`).
"""

import threading
from collections.abc import Iterator

import pynamodb.connection.table
from django.conf import settings
from pynamodb.connection import Connection
from pynamodb.models import Model

from fxfer import aws


class SharedSessionConnection(Connection):
    """PynamoDB's Connection on the process's botocore session, its client built once under fxfer.aws's lock."""

    @property
    def session(self):
        if self._aws_access_key_id:  # credentials of its own (none of ours has): PynamoDB's own session
            return super().session
        return aws.botocore_session()

    @property
    def client(self):
        # Two threads meeting a connection without a client would each build one; the lock is reentrant, cheap
        # when nobody else holds it, and held only while the client is looked up or built.
        with aws.client_creation_lock:
            return super().client


# The models' connections: PynamoDB builds one per model class (TableConnection), from this name.
pynamodb.connection.table.Connection = SharedSessionConnection


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


_connections: dict[tuple[str, str | None], Connection] = {}
_connections_lock = threading.Lock()


def connection() -> Connection:
    """The process's connection for transactions across tables (same endpoint, region, timeouts and retries as
    the models), one per endpoint and region: read from the settings on every call."""
    key = (settings.FXFER_AWS_REGION, settings.FXFER_DYNAMODB_ENDPOINT or None)
    found = _connections.get(key)
    if found is None:
        with _connections_lock:
            found = _connections.get(key)
            if found is None:
                found = _connections[key] = SharedSessionConnection(
                    region=key[0],
                    host=key[1],
                    connect_timeout_seconds=3,
                    read_timeout_seconds=5,
                    max_retry_attempts=3,
                )
    return found


def reachable() -> tuple[bool, str]:
    """One cheap GetItem (half a read unit) with a short timeout and no retries: for health checks."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        aws.client("dynamodb", timeout_seconds=2, attempts=1).get_item(
            TableName=table_name("audit-chain"), Key={"chain": {"S": "healthz"}}
        )
    except ClientError as exc:
        return False, f"DynamoDB answered {exc.response.get('Error', {}).get('Code', 'error')}"
    except BotoCoreError as exc:
        return False, f"DynamoDB unreachable: {type(exc).__name__}"
    return True, "ok"
