"""DynamoDB's item operations are atomic; moto's are not when threads overlap. Its TransactWriteItems copies
whole tables and restores the copy when a condition fails, undoing any write another thread made meanwhile; a
conditional put or update checks and writes in separate steps; a query walks a table's items while another
thread's write changes them. Tests that race threads (the audit chain, the one-download limit, concurrent
sweeps) and the local stand-in run moto's DynamoDB calls one at a time, as DynamoDB presents each item."""

import functools
import threading

_LOCK = threading.RLock()
_CALLS = (
    "get_item",
    "query",
    "scan",
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
)


def make_dynamodb_writes_atomic() -> None:
    """Patch moto's DynamoDB backend so every item read and write runs alone. Idempotent."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _CALLS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_fxfer_atomic", False):
            continue
        setattr(DynamoDBBackend, name, _serialised(method))


def _serialised(method):
    @functools.wraps(method)
    def run_alone(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    run_alone._fxfer_atomic = True
    return run_alone
