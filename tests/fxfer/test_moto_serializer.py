"""The stand-in's answers are moto's own: devtools/moto_serializer.py writes an AttributeValue directly only where
moto's model walk would write the same bytes, so every DynamoDB answer a test reads is unchanged."""

import json

import pytest
from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class

from devtools.moto_serializer import wire_form

ITEM = {
    "pk": {"S": "transfer#1"},
    "empty": {"S": ""},
    "unicode": {"S": '見積書 ✓ "quoted" \\ </script>'},
    "count": {"N": "-12.50"},
    "names": {"SS": ["a", "b"]},
    "sizes": {"NS": ["1", "2.5"]},
    "nothing": {"NULL": True},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "nested": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"M": {}}, {"L": []}, {"BOOL": False}]}}},
    "empty_map": {"M": {}},
    "empty_list": {"L": []},
}
# Not plain wire form: moto's walk must still write these (and writes them as it always did).
ODD = {
    "binary": {"B": "c2VjcmV0"},
    "binaries": {"BS": ["YQ==", "Yg=="]},
    "number_as_int": {"N": 5},
    "two_kinds": {"S": "a", "N": "1"},
    "deep_odd": {"M": {"inner": {"L": [{"S": "x"}, {"N": 7}]}}},
    "set_of_ints": {"SS": ["a", 1]},
}


def _answer(operation: str, result: dict, *, direct: bool) -> dict:
    from moto.core.utils import get_service_model

    model = get_service_model("dynamodb")
    serializer_cls = get_serializer_class("dynamodb", model.metadata["protocol"])
    walk = BaseJSONSerializer._serialize_type_structure
    if not direct:
        walk = getattr(walk, "_fxfer_walk", walk)
    original = BaseJSONSerializer._serialize_type_structure
    BaseJSONSerializer._serialize_type_structure = walk
    try:
        serializer = serializer_cls(
            operation_model=model.operation_model(operation), value_picker=XFormedAttributePicker()
        )
        return json.loads(serializer.serialize(result)["body"])
    finally:
        BaseJSONSerializer._serialize_type_structure = original


def test_the_patch_is_in_place_for_the_tests():
    assert getattr(BaseJSONSerializer._serialize_type_structure, "_fxfer_direct", False)


@pytest.mark.parametrize(
    "operation, result",
    [
        ("GetItem", {"Item": {**ITEM, **ODD}, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}}),
        ("Query", {"Items": [ITEM, ODD, ITEM], "Count": 3, "ScannedCount": 3, "LastEvaluatedKey": {"pk": ITEM["pk"]}}),
        ("BatchGetItem", {"Responses": {"t": [ITEM, ODD]}, "UnprocessedKeys": {"t": {"Keys": [{"pk": ITEM["pk"]}]}}}),
        (
            "TransactWriteItems",
            {
                "ItemCollectionMetrics": {
                    "t": [{"ItemCollectionKey": {"pk": ITEM["pk"]}, "SizeEstimateRangeGB": [0, 1]}]
                }
            },
        ),
        ("UpdateItem", {"Attributes": {**ITEM, **ODD}}),
    ],
)
def test_an_answer_written_directly_is_the_answer_moto_writes(operation, result):
    direct = _answer(operation, result, direct=True)
    assert direct == _answer(operation, result, direct=False)
    # And it is the item itself, so the comparison above compared something.
    if operation == "GetItem":
        assert direct["Item"]["nested"] == ITEM["nested"]
        assert direct["Item"]["unicode"] == ITEM["unicode"]


def test_only_plain_wire_form_is_written_directly():
    assert all(wire_form(value) for value in ITEM.values())
    assert not any(wire_form(value) for value in ODD.values())


def test_an_item_round_trips_through_the_stand_in():
    from fxfer import aws

    client = aws.client("dynamodb")
    client.create_table(
        TableName="serializer-check",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {**ITEM, "binary": {"B": b"\x00secret\xff"}}
    client.put_item(TableName="serializer-check", Item=item)
    assert client.get_item(TableName="serializer-check", Key={"pk": ITEM["pk"]}, ConsistentRead=True)["Item"] == item
    [found] = client.query(
        TableName="serializer-check",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": ITEM["pk"]},
    )["Items"]
    assert found == item
