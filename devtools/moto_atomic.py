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
    if not getattr(DynamoDBBackend.transact_write_items, "_fxfer_items", False):
        DynamoDBBackend.transact_write_items = _serialised(_transact_write_items)
        DynamoDBBackend.transact_write_items._fxfer_items = True
        DynamoDBBackend.transact_write_items._fxfer_atomic = True


def _transact_write_items(self, transact_items: list[dict]) -> None:
    """moto's TransactWriteItems, with one change: to roll back, it keeps a copy of the items the transaction
    touches rather than of every table it touches, once per item (which made each transaction cost the size of
    its tables: the fault-injection sweeps, which write thousands of items, slowed down case after case)."""
    import copy

    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import get_filter_expression
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    snapshots: list[tuple] = []  # (table, hash key, range key, the item before) for each item touched
    seen: set[tuple[str, str]] = set()

    def rollback() -> None:
        for table, hash_key, range_key, before in reversed(snapshots):
            if before is None:
                table.delete_item(hash_key, range_key)
            elif range_key is not None:
                table.items[hash_key][range_key] = before
            else:
                table.items[hash_key] = before

    errors: list[tuple] = []
    for item in transact_items:
        original_item = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            table = self.get_table(table_name)
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            marker = (str(table_name), str(dict(sorted(key.items()))))
            if marker in seen:
                raise MultipleTransactionsException()
            seen.add(marker)
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = self.get_item(table_name, key)
            snapshots.append((table, hash_key, range_key, copy.deepcopy(current)))
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            condition = op.get("ConditionExpression")
            if condition is not None:
                if not get_filter_expression(condition, names, values).expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            kwargs = {
                "condition_expression": condition,
                "expression_attribute_names": names,
                "expression_attribute_values": values,
            }
            if op_type == "Put":
                self.put_item(table_name, op["Item"], **kwargs)
            elif op_type == "Delete":
                self.delete_item(table_name, key, **kwargs)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"], **kwargs)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except ConditionalCheckFailed as exc:
            errors.append(("ConditionalCheckFailed", str(exc.message), original_item))
        except Exception as exc:  # as moto does: any other failure cancels the transaction with its reason
            errors.append((type(exc).__name__, str(exc), original_item))
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)


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


def patch_moto_dynamodb() -> None:
    """Every patch moto's DynamoDB gets wherever it stands in (tests, the local stack, the benches): item operations
    one at a time with transaction tokens honoured (here), and AttributeValues written directly into its answers
    (devtools/moto_serializer.py). Idempotent."""
    from devtools.moto_serializer import write_attribute_values_directly

    make_dynamodb_writes_atomic()
    write_attribute_values_directly()
