"""DynamoDB's item operations are atomic; moto's are not when threads overlap. Its TransactWriteItems copies
whole tables and restores the copy when a condition fails, undoing any write another thread made meanwhile; a
conditional put or update checks and writes in separate steps; a query walks a table's items while another
thread's write changes them. Tests that race threads (the audit chain, the one-download limit, concurrent
sweeps) and the local stand-in run moto's DynamoDB calls one at a time, as DynamoDB presents each item.

moto also ignores TransactWriteItems' ClientRequestToken: a transaction retried after a lost answer would be
applied again (or fail its own conditions), where AWS answers success and changes nothing for ten minutes.
The same patch remembers each token's success, so lost-answer tests mean on moto what they mean on AWS."""

import functools
import threading
import time

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


TOKEN_SECONDS = 600
_TOKENS: dict[tuple[str, str], tuple[float, str, object]] = {}


def make_dynamodb_writes_atomic() -> None:
    """Patch moto's DynamoDB backend so every item read and write runs alone, and honour transaction tokens.
    Idempotent."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    for name in _CALLS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_fxfer_atomic", False):
            continue
        setattr(DynamoDBBackend, name, _serialised(method))
    if not getattr(DynamoHandler.transact_write_items, "_fxfer_token", False):
        DynamoHandler.transact_write_items = _idempotent(DynamoHandler.transact_write_items)


def _idempotent(handler):
    """AWS: "subsequent TransactWriteItems calls with the same client token return successfully without making
    any changes" for ten minutes after a success, and the same token with other items is an
    IdempotentParameterMismatchException. A failed call is not remembered (a retry runs again)."""
    import hashlib
    import json

    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

    @functools.wraps(handler)
    def transact_write_items(self):
        token = self.body.get("ClientRequestToken")
        if not token:
            return handler(self)
        key = (f"{self.current_account}:{self.region}", token)
        items = hashlib.sha256(json.dumps(self.body.get("TransactItems"), sort_keys=True).encode()).hexdigest()
        with _LOCK:
            now = time.monotonic()
            for stale in [k for k, (at, _i, _r) in _TOKENS.items() if now - at > TOKEN_SECONDS]:
                _TOKENS.pop(stale, None)
            if key in _TOKENS:
                _at, seen_items, result = _TOKENS[key]
                if seen_items != items:
                    raise DynamodbException(
                        ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                        "The request uses the same client token as a previous, but non-identical request.",
                    )
                return result
            result = handler(self)
            _TOKENS[key] = (now, items, result)
            return result

    transact_write_items._fxfer_token = True
    return transact_write_items


def forget_transaction_tokens() -> None:
    """Tests: a fresh moto (mock_aws) starts with no remembered tokens, as a fresh table would."""
    with _LOCK:
        _TOKENS.clear()


def _serialised(method):
    @functools.wraps(method)
    def run_alone(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    run_alone._fxfer_atomic = True
    return run_alone
