"""Cost of the daily aggregation: it must follow the day's events, not the table's size.

    python -m bench.aggregate [--sizes 1000,10000,100000] [--background-days 20] [--background-events 1000]

In-process moto (mock_aws), provisioned as in production. Events are written straight into the audit table in
batches (not through audit_record's chain: the aggregation does not read the chain, and chaining 100k events
one transaction at a time would only time moto). Then `reports.services.daily_stats_rebuild` runs, unchanged,
for one day of each size, and the script prints the wall time and the read units used.

1. the smallest day alone in the table, then
2. the same day again once the table also holds the background days and the larger days:
   the same day costs the same, whatever else the table holds.

Read units are counted as DynamoDB bills them: per Query page, the returned items' size rounded up to 4 KB,
half a unit for an eventually consistent read; per key of a BatchGetItem, half a unit (items under 4 KB).

moto answers a Query on a global secondary index by walking every item of the table (its cost grows with the
table, unlike DynamoDB's, which reads only the partition). So that the times measure our code and not moto's
index, the bench gives moto's GSI queries the partition directly (same results, same order, same paging),
built once after the writes and not timed. The read units do not depend on this.
"""

import argparse
import math
import os
import random
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

TIME_BUDGET_SECONDS = 1200
DAY_ZERO = date(2026, 11, 1)


def _setup():
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "DJANGO_SETTINGS_MODULE": "fxfer.settings.test",
    }.items():
        os.environ[name] = value
    import django

    django.setup()


class Meter:
    """Read units the aggregation uses, and moto's GSI queries given their partition (see the docstring)."""

    def __init__(self):
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table

        self.read_units = 0.0
        self.lock = threading.Lock()
        self.partitions: dict[tuple[str, str, str], list] = {}
        local = threading.local()
        meter = self
        original_query, original_all_items, original_get = Table.query, Table.all_items, DynamoDBBackend.get_item

        def all_items(table):
            restricted = getattr(local, "restricted", None)
            if restricted is not None and restricted[0] is table:
                return restricted[1]
            return original_all_items(table)

        def query(table, *args, **kwargs):
            index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
            conditions = kwargs.get("hash_key_conditions") or []
            partition = None
            if index_name and len(conditions) == 1:
                attribute, value = conditions[0]
                partition = meter.partitions.get((table.name, index_name, attribute, value.value))
            local.restricted = (table, partition) if partition is not None else None
            try:
                results, scanned, last_key = original_query(table, *args, **kwargs)
            finally:
                local.restricted = None
            size = sum(item.size() for item in results)
            with meter.lock:
                meter.read_units += max(1, math.ceil(size / 4096)) * 0.5
            return results, scanned, last_key

        def get_item(backend, *args, **kwargs):
            with meter.lock:
                meter.read_units += 0.5
            return original_get(backend, *args, **kwargs)

        Table.all_items, Table.query, DynamoDBBackend.get_item = all_items, query, get_item

    def index_partitions(self, table_name: str, index_name: str, attribute: str):
        """Group the table's items by one GSI hash key (once, after the writes; not timed)."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends["123456789012"]["ap-northeast-1"].tables[table_name]
        partitions: dict[str, list] = {}
        for item in table.all_items():
            value = item.attrs.get(attribute)
            if value is not None:
                partitions.setdefault(value.value, []).append(item)
        self.partitions = {(table_name, index_name, attribute, k): v for k, v in partitions.items()}
        return sum(len(v) for v in partitions.values())


def _events(day: date, count: int, first_seq: int, rng: random.Random):
    from django.conf import settings

    from reports.services import audit_event

    zone = ZoneInfo(settings.TIME_ZONE)
    start = datetime.combine(day, dtime.min, zone).astimezone(UTC)
    users = [f"user:{n:064x}" for n in range(50)]
    transfers = [f"transfer:bench{n:06d}" for n in range(max(10, count // 20))]
    mix = (
        ("transfer.created", 10),
        ("file.verified", 15),
        ("mail.sent", 15),
        ("link.opened", 15),
        ("code.sent", 10),
        ("access.granted", 10),
        ("download.url_issued", 20),
        ("code.failed", 3),
        ("signin.succeeded", 2),
    )
    actions = [action for action, weight in mix for _ in range(weight)]
    for n in range(count):
        seq = first_seq + n
        at = start + timedelta(seconds=86399 * n / max(count, 1))
        action = rng.choice(actions)
        subject = rng.choice(transfers)
        actor = rng.choice(users) if action in {"transfer.created", "signin.succeeded"} else f"guest:r{seq % 97}"
        details = {"size": rng.randint(1, 10**9)} if action in {"file.verified", "download.url_issued"} else None
        if action == "transfer.created":
            details = {
                "recipients": [f"bob@partner{rng.randint(1, 30)}.example"],
                "files": [{"file_id": "f", "name": "report.pdf", "size": 1000}],
                "total_bytes": rng.randint(1, 10**10),
            }
        # Shaped as the services write them (reports.services.audit_event), already linked as the chainer
        # leaves them: the aggregation reads the day's events whatever their chain state.
        event = audit_event(
            action=action,
            actor=actor,
            subject=subject,
            outcome="refused" if action == "code.failed" else "ok",
            ip="192.0.2.10",
            user_agent="Mozilla/5.0 (bench)",
            details=details,
            now=at,
            event_id=f"{rng.getrandbits(128):032x}",
        )
        event.seq, event.unchained = seq, None
        yield event


def _fill(day: date, count: int, first_seq: int, rng: random.Random) -> int:
    from reports.models import AuditEvent

    with AuditEvent.batch_write() as batch:
        for event in _events(day, count, first_seq, rng):
            batch.save(event)
    return first_seq + count


def _aggregate(meter: Meter, day: date) -> tuple[float, float, int]:
    from reports.services import daily_stats_rebuild

    meter.read_units = 0.0
    started = time.perf_counter()
    built = daily_stats_rebuild(day=day)
    return time.perf_counter() - started, meter.read_units, built.events_read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="events of each measured day")
    parser.add_argument("--background-days", type=int, default=20, help="other days in the table")
    parser.add_argument("--background-events", type=int, default=1000, help="events of each other day")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    _setup()
    from django.conf import settings
    from moto import mock_aws

    from fxfer import dynamo
    from fxfer.provisioning import provision

    begun = time.perf_counter()
    rng = random.Random(7)  # noqa: S311 - test data
    with mock_aws():
        list(provision())
        meter = Meter()
        table = dynamo.table_name("audit-events")
        days = {size: DAY_ZERO + timedelta(days=i) for i, size in enumerate(sizes)}
        seq = 1

        print(f"shards per day: {settings.FXFER_AUDIT_DAY_SHARDS}")
        print(f"{'day':<12}{'events':>9}{'table items':>13}{'seconds':>10}{'read units':>12}")
        smallest = min(sizes)
        _aggregate(meter, DAY_ZERO - timedelta(days=1))  # warm-up (imports, connections), not reported
        seq = _fill(days[smallest], smallest, seq, rng)
        items = meter.index_partitions(table, "by-day", "day_shard")
        seconds, units, read = _aggregate(meter, days[smallest])
        print(
            f"{days[smallest].isoformat():<12}{read:>9}{items:>13}{seconds:>10.3f}{units:>12.1f}  (alone in the table)"
        )

        for i in range(args.background_days):
            seq = _fill(DAY_ZERO + timedelta(days=len(sizes) + i), args.background_events, seq, rng)
        written = {smallest}
        for size in sizes:
            if size != smallest:
                if time.perf_counter() - begun > TIME_BUDGET_SECONDS:
                    print(f"stopped: over the {TIME_BUDGET_SECONDS} s budget before writing the {size}-event day")
                    break
                filled = time.perf_counter()
                seq = _fill(days[size], size, seq, rng)
                written.add(size)
                print(f"  (wrote {size} events in {time.perf_counter() - filled:.1f} s)")
        items = meter.index_partitions(table, "by-day", "day_shard")
        for size in sizes:
            if size in written:
                seconds, units, read = _aggregate(meter, days[size])
                print(f"{days[size].isoformat():<12}{read:>9}{items:>13}{seconds:>10.3f}{units:>12.1f}")
    print(f"total bench time {time.perf_counter() - begun:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
