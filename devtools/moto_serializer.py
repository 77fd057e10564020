"""moto (5.2) writes each DynamoDB answer by walking botocore's model of it, member by member, and for every
member of every AttributeValue (ten: S, N, B, SS, NS, BS, M, L, NULL, BOOL) it tries several spellings of the
name on the value. An item of twenty attributes costs some two hundred lookups; a Query or BatchGetItem page
of a hundred items, tens of thousands. That walk was about half the CPU of the fault-injection sweeps, which
read the same tables thousands of times.

moto already holds an AttributeValue in DynamoDB's wire form ({"S": "..."}, {"M": {...}}). This patch puts such
a value into the answer as it is, when it is plainly that form: one type key, strings where DynamoDB sends
strings, and the same below M and L. Anything else (a binary, which the walk base64-encodes; several keys; a
value of another Python type) still takes moto's walk, so the answer is the one moto would have written.
tests/fxfer/test_moto_serializer.py compares the two on every kind of attribute."""

from typing import Any

_STRINGS = frozenset({"S", "N"})
_STRING_SETS = frozenset({"SS", "NS"})
_FLAGS = frozenset({"NULL", "BOOL"})


def wire_form(value: Any) -> bool:
    """Whether `value` is an AttributeValue in DynamoDB's JSON form that moto's walk would write unchanged."""
    if type(value) is not dict or len(value) != 1:
        return False
    [(kind, inner)] = value.items()
    if kind in _STRINGS:
        return type(inner) is str
    if kind in _STRING_SETS:
        return type(inner) is list and all(type(member) is str for member in inner)
    if kind in _FLAGS:
        return type(inner) is bool
    if kind == "M":
        return type(inner) is dict and all(type(name) is str and wire_form(v) for name, v in inner.items())
    if kind == "L":
        return type(inner) is list and all(wire_form(member) for member in inner)
    return False


def write_attribute_values_directly() -> None:
    """Patch moto's JSON serializer: an AttributeValue in wire form is written as it is. Idempotent."""
    from moto.core.serialize import BaseJSONSerializer

    walk = BaseJSONSerializer._serialize_type_structure
    if getattr(walk, "_fxfer_direct", False):
        return

    def _serialize_type_structure(self, serialized, value, shape, key):
        if key and shape.name == "AttributeValue" and wire_form(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        walk(self, serialized, value, shape, key)

    _serialize_type_structure._fxfer_direct = True
    _serialize_type_structure._fxfer_walk = walk
    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure
