"""The operator's page (/admin/operations/): stage and versions, each scheduled job's last run as the jobs
themselves record it, the chainer's lag, mails waiting or given up, and the failed-events queue; a figure AWS
does not give shows as "could not read", never as a 500."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django
import pytest
from django.conf import settings
from pynamodb.exceptions import QueryError

from fxfer import aws
from reports import operations
from reports.jobs import aggregate_daily, every_minute
from reports.models import JobRun
from reports.services import audit_record
from tests.faults import ERROR, PERSISTENT, inject, recording
from transfers.jobs import expire_sweep
from transfers.outbox import outbox_item

URL = "/admin/operations/"
ROOT = Path(__file__).resolve().parents[2]


def _text(response) -> str:
    """The page's text with tags and runs of white space collapsed (what a reader sees, roughly)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def _job_row(response, function: str) -> str:
    html = response.content.decode()
    start = html.index(f'id="job-{function}"')
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[start : html.index("</tr>", start)]))


# --- Who sees it ---------------------------------------------------------------------------------------------


def test_an_employee_is_refused(employee):
    response = employee.get(URL)
    assert response.status_code == 403
    assert "only open to members of the compliance group" in response.content.decode()


def test_someone_not_signed_in_is_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/saml/login/?next=%2Fadmin%2Foperations%2F"


def test_the_nav_of_every_admin_page_links_it(officer):
    assert 'href="/admin/operations/"' in officer.get("/admin/").content.decode()


# --- What it shows -------------------------------------------------------------------------------------------


def test_stage_and_versions(officer):
    text = _text(officer.get(URL))
    assert f"Stage {settings.FXFER_STAGE}" in text
    assert f"Django {django.get_version()}" in text
    assert re.search(r"Python 3\.13\.\d+", text)
    import boto3

    assert f"boto3 {boto3.__version__}" in text
    assert "fxfer not recorded (not a packaged build)" in text


def test_a_packaged_build_shows_its_version_and_commit(officer, tmp_path, monkeypatch):
    build = tmp_path / "build.json"
    build.write_text(json.dumps({"version": "0.1.0", "commit": "abc1234", "built_at": "2026-11-30T14:00:00Z"}))
    monkeypatch.setattr(operations, "BUILD_FILE", build)
    text = _text(officer.get(URL))
    assert "fxfer 0.1.0 (abc1234)" in text
    assert "Built 2026-11-30T14:00:00Z" in text


def test_a_job_run_records_itself_and_the_page_shows_it(officer):
    audit_record(action="transfer.created", actor="user:a", subject="transfer:t1")
    result = every_minute({"detail-type": "Scheduled Event"}, None)  # links the event: a real run
    assert result["linked"] == 1

    response = officer.get(URL)
    assert response.status_code == 200
    row = _job_row(response, "reports.jobs.every_minute")
    assert "Audit chain links, then mail retries" in row
    assert " ok " in row
    assert "linked=1" in row
    run = JobRun.get("reports.jobs.every_minute")
    assert run.outcome == "ok" and run.failures_in_a_row == 0 and run.last_ok_at is not None
    assert run.duration_ms >= 0
    # The jobs that have not run yet say so.
    assert "never ran" in _job_row(response, "reports.jobs.aggregate_daily")
    assert "never ran" in _job_row(response, "transfers.jobs.expire_sweep")


def test_the_sweep_records_its_run_too(officer):
    expire_sweep({"time": datetime.now(UTC).isoformat()}, None)
    row = _job_row(officer.get(URL), "transfers.jobs.expire_sweep")
    assert " ok " in row and "transfers_expired=0" in row


def test_a_failed_run_is_recorded_with_its_error_and_counted_until_a_good_one(officer):
    fired = {"detail-type": "Scheduled Event", "time": "2026-11-28T15:10:00Z"}
    for _ in range(2):
        with inject(ERROR, service="dynamodb", operation="Query", times=1000), pytest.raises(QueryError):
            aggregate_daily(fired, None)
    run = JobRun.get("reports.jobs.aggregate_daily")
    assert (run.outcome, run.failures_in_a_row, run.last_ok_at) == ("failed", 2, None)
    assert run.summary.startswith("QueryError") and "Lambda retries" in run.summary
    row = _job_row(officer.get(URL), "reports.jobs.aggregate_daily")
    assert "failed" in row and "2 failures in a row" in row

    aggregate_daily(fired, None)  # Lambda's retry succeeds
    run = JobRun.get("reports.jobs.aggregate_daily")
    assert (run.outcome, run.failures_in_a_row) == ("ok", 0)
    assert "day=2026-11-28" in run.summary


def test_an_error_not_worth_retrying_is_a_failed_run(monkeypatch):
    def broken(**_kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("reports.services.daily_stats_rebuild", broken)
    answer = aggregate_daily({"detail-type": "Scheduled Event", "time": "2026-11-28T15:10:00Z"}, None)
    assert answer == {"error": "ValueError", "retried": False}
    run = JobRun.get("reports.jobs.aggregate_daily")
    assert run.outcome == "failed" and run.summary == "ValueError; not retried"


def test_a_job_whose_record_cannot_be_written_still_runs_and_answers(caplog):
    audit_record(action="transfer.created", actor="user:a", subject="transfer:t2")
    # Every UpdateItem fails (the minute job with no mails due makes none of its own): the record is lost.
    with inject(ERROR, service="dynamodb", operation="UpdateItem", times=PERSISTENT) as fault:
        result = every_minute({"detail-type": "Scheduled Event"}, None)
    assert fault.fired
    assert result["linked"] == 1 and "error" not in result
    assert any(r.getMessage() == "job.record_failed" for r in caplog.records)
    with pytest.raises(JobRun.DoesNotExist):
        JobRun.get("reports.jobs.every_minute")


def test_a_job_that_has_not_ended_a_run_in_twice_its_interval_is_overdue(officer):
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    JobRun(
        job="reports.jobs.every_minute",
        started_at=long_ago,
        finished_at=long_ago,
        outcome="ok",
        summary="linked=0",
        duration_ms=120,
        last_ok_at=long_ago,
        failures_in_a_row=0,
    ).save()
    row = _job_row(officer.get(URL), "reports.jobs.every_minute")
    assert "overdue" in row and "last: ok" in row and "0.1 s" in row


def test_the_chainers_lag(officer):
    assert "Every event is linked into the hash chain." in _text(officer.get(URL))
    audit_record(
        action="transfer.created", actor="user:a", subject="transfer:t3", now=datetime.now(UTC) - timedelta(minutes=5)
    )
    text = _text(officer.get(URL))
    lag = int(re.search(r"not yet linked into the hash chain was written at [\d\-: ]+: (\d+) s ago", text).group(1))
    assert 295 <= lag <= 400
    assert 'class="fx-bad">The oldest event not yet linked' in officer.get(URL).content.decode()  # past 2 minutes


def test_mails_waiting_and_given_up(officer):
    now = datetime.now(UTC)
    waiting = outbox_item(key="notice:w1", kind="download_notice", to="a@corp.example", subject="s", body="b", now=now)
    waiting.attempts = 3
    waiting.last_error = "Throttling"
    waiting.save()
    outbox_item(key="notice:w2", kind="code", to="b@partner.example", subject="s", body="b", now=now).save()
    audit_record(
        action="mail.sent",
        actor="system",
        subject="transfer:t4",
        outcome="failed",
        details={"kind": "link", "to": "c@partner.example", "error": "MessageRejected", "attempts": 1},
    )
    text = _text(officer.get(URL))
    assert "2 mails waiting to be sent." in text
    assert "Of the 2 read, 1 failed at least once (at most 3 attempts so far)." in text
    assert "Throttling \u00d7 1" in text
    assert "1 mail given up on in the last 24 hours." in text
    assert "MessageRejected" in text and "transfer:t4" in text


def test_nothing_waiting(officer):
    text = _text(officer.get(URL))
    assert "No mail is waiting to be sent." in text
    assert "No mail given up on in the last 24 hours." in text


def test_the_failed_events_queue(officer):
    text = _text(officer.get(URL))
    name = settings.FXFER_FAILED_EVENTS_QUEUE
    assert f"Queue {name}: 0 waiting, 0 being read." in text
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"requestContext": {"condition": "RetriesExhausted"}}))
    assert f"Queue {name}: 1 waiting, 0 being read." in _text(officer.get(URL))


def test_a_queue_that_was_never_provisioned(officer, settings):
    settings.FXFER_FAILED_EVENTS_QUEUE = "fxfer-test-not-there"
    assert "the queue fxfer-test-not-there does not exist. Run manage.py provision." in _text(officer.get(URL))


def test_a_local_run_without_sqs_says_not_configured_and_asks_no_aws(officer, settings):
    settings.FXFER_DYNAMODB_ENDPOINT = "http://127.0.0.1:5000"  # read by the page only: the models keep moto
    settings.FXFER_SQS_ENDPOINT = ""
    with recording() as calls:
        text = _text(officer.get(URL))
    assert "Not configured: this local run has no SQS stand-in" in text
    assert not [c for c in calls.calls if c[0] == "sqs"]


# --- When AWS does not answer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "section"),
    [
        ("dynamodb", "BatchGetItem", "Could not read the jobs' last runs: ThrottlingException."),
        ("sqs", "GetQueueUrl", "Could not read the failed-events queue: ThrottlingException."),
        ("sqs", "GetQueueAttributes", "Could not read the failed-events queue: ThrottlingException."),
    ],
)
def test_a_figure_aws_does_not_give_says_so_and_the_rest_renders(officer, service, operation, section):
    with inject(ERROR, service=service, operation=operation, times=PERSISTENT) as fault:
        response = officer.get(URL)
    assert fault.fired
    assert response.status_code == 200
    text = _text(response)
    assert section in text
    assert f"Django {django.get_version()}" in text


def test_every_read_of_the_page_failing_in_turn_gives_could_not_read_never_a_500(officer):
    audit_record(action="transfer.created", actor="user:a", subject="transfer:t5")
    outbox_item(
        key="notice:r1", kind="code", to="r@partner.example", subject="s", body="b", now=datetime.now(UTC)
    ).save()
    with recording() as rec:
        assert officer.get(URL).status_code == 200
    # The page's own reads: everything but the sign-in's session and user look-ups (GetItem, UpdateItem).
    reads = sorted({(s, o) for s, o in rec.calls if o not in {"GetItem", "UpdateItem", "PutItem"}})
    assert {("dynamodb", "BatchGetItem"), ("dynamodb", "Query"), ("sqs", "GetQueueUrl")} <= set(reads)
    for service, operation in reads:
        for nth in range(1, sum(1 for c in rec.calls if c == (service, operation)) + 1):
            with inject(ERROR, service=service, operation=operation, nth=nth, times=PERSISTENT) as fault:
                response = officer.get(URL)
            assert fault.fired, (service, operation, nth)
            assert response.status_code == 200, (service, operation, nth)
            assert "Could not read" in _text(response), (service, operation, nth)


def test_every_scheduled_function_is_on_the_page():
    """The page's job list and zappa_settings.json's scheduled events name the same functions, in every stage."""
    stages = json.loads((ROOT / "zappa_settings.json").read_text())
    for stage, config in stages.items():
        scheduled = {e["function"] for e in config.get("events", []) if "expression" in e}
        assert scheduled == {job.function for job in operations.JOBS}, stage


def test_the_package_step_writes_the_builds_identity_only_while_zappa_packages(monkeypatch, tmp_path):
    from devtools import package

    build = tmp_path / "build.json"
    monkeypatch.setattr(package, "BUILD_FILE", build)
    monkeypatch.setattr(operations, "BUILD_FILE", build)
    with package.build_file():
        info = operations.build_info()
        assert info["version"] == "0.1.0"
        assert re.fullmatch(r"[0-9a-f]{12}( \+ uncommitted changes)?", info["commit"])
        assert info["built_at"].endswith("Z")
    assert not build.exists()
    assert operations.build_info() == {}
