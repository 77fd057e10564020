"""The audit log: filtered by actor, action and dates, a page at a time across the day's shards, exported as
CSV that Excel opens (UTF-8 with BOM) and that cannot run formulas."""

import csv
import io
from datetime import UTC, datetime

from reports.chain import audit_chain_link
from reports.services import audit_record
from tests.reports.conftest import events_of

DAY = {"first_day": "2026-11-28", "last_day": "2026-11-28"}


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, tzinfo=UTC)  # Tokyo: 28 November for hours 0-14


def _events():
    audit_record(action="signin.succeeded", actor="user:a", subject="user:a", ip="192.0.2.1", now=_at(0))
    audit_record(action="transfer.created", actor="user:a", subject="transfer:t1", now=_at(1))
    audit_record(action="code.failed", actor="guest:r1", subject="transfer:t1", outcome="refused", now=_at(2))
    audit_record(action="transfer.created", actor="user:b", subject="transfer:t2", now=_at(3))
    audit_record(
        action="transfer.created", actor="user:a", subject="transfer:t3", now=datetime(2026, 11, 26, 1, tzinfo=UTC)
    )
    audit_chain_link()  # in time order: the event of the 26th is 1, those of the 28th 2..5


def _seqs(response) -> list[int]:
    rows = response.content.decode().split('id="audit-log"')[1].split("</tbody>")[0].split("<tr>")[2:]
    return [int(row.split("<td>")[1].split("</td>")[0]) for row in rows]


def test_the_log_is_newest_first_and_filters_by_actor_action_and_dates(officer):
    _events()
    assert _seqs(officer.get("/admin/audit/", DAY)) == [5, 4, 3, 2]
    assert _seqs(officer.get("/admin/audit/", {**DAY, "actor": "user:a"})) == [3, 2]
    assert _seqs(officer.get("/admin/audit/", {**DAY, "action": "transfer.created"})) == [5, 3]
    assert _seqs(officer.get("/admin/audit/", {**DAY, "actor": "user:a", "action": "transfer.created"})) == [3]
    assert _seqs(officer.get("/admin/audit/", {"first_day": "2026-11-26", "last_day": "2026-11-28"})) == [5, 4, 3, 2, 1]
    assert _seqs(officer.get("/admin/audit/", {"first_day": "2026-11-26", "last_day": "2026-11-26"})) == [1]


def test_pages_follow_each_other_across_days_and_shards(officer, settings):
    settings.FXFER_ADMIN_PAGE_SIZE = 2
    _events()
    query = {"first_day": "2026-11-26", "last_day": "2026-11-28"}
    seen = []
    for _ in range(5):
        response = officer.get("/admin/audit/", query)
        seen += _seqs(response)
        page = response.content.decode()
        if "Older events" not in page:
            break
        query = dict(
            item.split("=", 1)
            for item in page.split('class="fx-pager"><a href="?')[1].split('"')[0].replace("&amp;", "&").split("&")
        )
        from urllib.parse import unquote

        query = {k: unquote(v) for k, v in query.items()}
    assert seen == [5, 4, 3, 2, 1]


def test_bad_filters_and_forged_cursors_get_a_clear_answer(officer):
    assert "An action looks like" in officer.get("/admin/audit/", {"action": "DROP TABLE"}).content.decode()
    response = officer.get("/admin/audit/", {**DAY, "cursor": "eyJrIjoieCJ9"})
    assert response.status_code == 200 and "The page link is not valid" in response.content.decode()


def test_the_csv_export_streams_utf8_with_bom_and_defuses_formulas(officer, carol):
    audit_record(
        action="transfer.created",
        actor="user:a",
        subject="transfer:t1",
        user_agent='=HYPERLINK("http://evil.example")',
        details={"files": [{"name": "見積書.pdf"}]},
        now=_at(1),
    )
    response = officer.get("/admin/audit/export.csv", DAY)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="fxfer-audit-2026-11-28-2026-11-28.csv"'
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:5] == ["time", "seq", "actor", "actor address", "action"]
    [row] = rows[1:]
    assert row[4] == "transfer.created"
    assert row[8] == '\'=HYPERLINK("http://evil.example")'
    assert "見積書.pdf" in row[9]
    assert row[0].startswith("2026-11-28T10:00:00+09:00")
    [exported] = events_of("audit.exported")
    assert exported.actor == f"user:{carol.user_id}"
    assert exported.details["first_day"] == "2026-11-28"


def test_actors_are_shown_by_address(officer, alice):
    audit_record(action="transfer.created", actor=f"user:{alice.user_id}", subject="transfer:t1", now=_at(1))
    page = officer.get("/admin/audit/", DAY).content.decode()
    assert "alice@corp.example" in page
