"""The one place that decides every PynamoDB model's table name (stage prefix) and endpoint.

    class AuditEvent(Model):
        Meta = dynamo.meta("audit-events")

The endpoint is real AWS when FXFER_DYNAMODB_ENDPOINT is empty, the local stand-in's URL otherwise.

Every PynamoDB connection of the process builds its botocore client from fxfer.aws's one botocore session, under
its lock: PynamoDB would start a new session per connection and thread (~60 ms of CPU each, for every model
class and for every transaction's connection). Transactions share one connection per endpoint (`connection`).

PynamoDB itself (~15 ms of CPU to import) loads with the first model module or connection, not with this module:
a cold start whose first request reads no table (a health check) does without it. Django does not import the
model modules when it starts (only accounts.models, which holds no table): the code that reads a table imports it.
"""

import threading
from collections.abc import Iterator
from importlib import import_module

from django.conf import settings

from fxfer import aws

# Every module that defines PynamoDB models (tables): all_models() imports them.
MODEL_MODULES = ("accounts.tables", "transfers.models", "reports.models")


def _shared_session():
    """fxfer.dynamo_session: PynamoDB's connections on the process's botocore session, installed (once) before any
    model class or connection exists."""
    from fxfer import dynamo_session

    return dynamo_session


def table_name(short_name: str) -> str:
    return f"{table_prefix()}{short_name}"


def table_prefix() -> str:
    return f"fxfer-{settings.FXFER_STAGE}-"


def meta(short_name: str) -> type:
    """A PynamoDB Meta class for the table `short_name` of this stage."""
    _shared_session()
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


def all_models() -> Iterator[type]:
    """Every model of this project (the modules of MODEL_MODULES, imported here), each once."""
    from pynamodb.models import Model

    for module in MODEL_MODULES:
        import_module(module)
    seen = set()
    stack = list(Model.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        name = getattr(getattr(model, "Meta", None), "table_name", "")
        if name.startswith(table_prefix()) and name not in seen:
            seen.add(name)
            yield model


_connections: dict[tuple[str, str | None], object] = {}
_connections_lock = threading.Lock()


def connection():
    """The process's connection for transactions across tables (same endpoint, region, timeouts and retries as
    the models), one per endpoint and region: read from the settings on every call."""
    key = (settings.FXFER_AWS_REGION, settings.FXFER_DYNAMODB_ENDPOINT or None)
    found = _connections.get(key)
    if found is None:
        with _connections_lock:
            found = _connections.get(key)
            if found is None:
                found = _connections[key] = _shared_session().SharedSessionConnection(
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
