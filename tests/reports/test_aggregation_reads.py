"""The daily aggregation reads each of the day's transfers once (issue 15): the BatchGet that tells a verified
file's transfer's kind also gives its owner, so the departments do not read that transfer again. Reads are
counted at moto's door (the keys of every BatchGetItem and GetItem sent), where the HTTP request would leave."""

import contextlib
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from moto.core.botocore_stubber import BotocoreStubber

from reports.models import DailyStats
from reports.services import audit_record, daily_stats_rebuild
from tests.reports.conftest import make_user
from transfers.models import KIND_REQUEST, Transfer

DAY = date(2026, 11, 28)
AT = datetime(2026, 11, 28, 1, tzinfo=UTC)  # the 28th in Tokyo


@contextlib.contextmanager
def item_reads():
    """Counter of (table, key) for every item read by BatchGetItem or GetItem inside."""
    reads: Counter = Counter()
    original = BotocoreStubber.__call__

    def counting(self, event_name, request, **kwargs):
        if event_name in ("before-send.dynamodb.BatchGetItem", "before-send.dynamodb.GetItem"):
            body = json.loads(request.body)
            asked = body.get("RequestItems") or {body["TableName"]: {"Keys": [body["Key"]]}}
            for table, wanted in asked.items():
                for key in wanted["Keys"]:
                    reads[(table.rpartition("-")[2], json.dumps(key, sort_keys=True))] += 1
        return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = counting
    try:
        yield reads
    finally:
        BotocoreStubber.__call__ = original


def _parent(transfer_id: str, owner_id: str, *, request: bool = False) -> None:
    Transfer(
        transfer_id=transfer_id,
        owner_id=owner_id,
        owner_email="x@corp.example",
        created_at=AT,
        created_day=DAY.isoformat(),
        expires_at=AT + timedelta(days=7),
        download_limit=3,
        kind=KIND_REQUEST if request else "send",
    ).save()


def test_a_day_of_transfers_with_verified_files_reads_each_transfer_once(alice):
    bob = make_user("bob@corp.example", roles=["employee"], department="Legal")
    owners = [alice.user_id, bob.user_id]
    sends, requests, unverified = 8, 4, 3
    for number in range(sends + requests + unverified):
        owner = owners[number % 2]
        transfer_id = f"t{number:02d}"
        is_request = sends <= number < sends + requests
        _parent(transfer_id, owner, request=is_request)
        action = "request.created" if is_request else "transfer.created"
        details = {"recipients": ["x@partner.example"], "files": [{}, {}]}
        audit_record(action=action, actor=f"user:{owner}", subject=f"transfer:{transfer_id}", details=details, now=AT)
        if number < sends + requests:
            for size in (10, 20):
                audit_record(
                    action="file.verified",
                    actor="system",
                    subject=f"transfer:{transfer_id}",
                    details={"size": size},
                    now=AT,
                )
        audit_record(
            action="download.url_issued",
            actor="guest:r1",
            subject=f"transfer:{transfer_id}",
            details={"size": 5},
            now=AT,
        )

    with item_reads() as reads:
        built = daily_stats_rebuild(day=DAY)

    transfers_read = {key: count for (table, key), count in reads.items() if table == "transfers"}
    assert len(transfers_read) == sends + requests + unverified
    assert set(transfers_read.values()) == {1}, transfers_read  # every transfer item read once, none twice
    users_read = [count for (table, _key), count in reads.items() if table == "users"]
    assert users_read == [1, 1]
    # The figures are what the events say, the departments those of each transfer's owner.
    assert built.figures["files_received"] == requests * 2
    assert built.figures["bytes_uploaded"] == (sends + requests) * 30
    alice_department = DailyStats.get(DAY.isoformat(), f"dept:{alice.department}").figures
    legal = DailyStats.get(DAY.isoformat(), "dept:Legal").figures
    assert alice_department["files_received"] == legal["files_received"] == requests  # two requests each, 2 files
    assert alice_department["downloads"] + legal["downloads"] == sends + requests + unverified
    assert alice_department["bytes_uploaded"] == legal["bytes_uploaded"] == (sends + requests) * 15
