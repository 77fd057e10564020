"""What an operator sees of fxfer on Lambda (fxfer/observability.py): one JSON line per request and per job
(Powertools' formatter, secrets redacted), CloudWatch metrics as EMF lines, and X-Ray tracing that cannot break a
request when no daemon listens."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from fxfer import observability
from reports import jobs as report_jobs
from tests import logleaks
from tests.faults import ERROR, LOST, PERSISTENT, TIMEOUT, inject
from tests.transfers.conftest import (  # noqa: F401 - the transfer tests' autouse set-up applies here too
    _bucket_policy_without_conditions_is_not_ours,
    _fresh_kms_key_arn,
    _mail,
)
from tests.transfers.guest_links import open_link
from tests.transfers.test_views import alice_id, code_for, links, send_small_file, sign_in
from transfers.models import Recipient

ROOT = Path(__file__).resolve().parents[2]


def _lines() -> list[dict]:
    return [json.loads(line) for line in logleaks.CAPTURE.take()]


def _requests(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("message") == "request" and line["logger"] == "fxfer.observability"]


def _jobs(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("message") == "job"]


def _emf(out: str) -> list[dict]:
    """The EMF documents printed to stdout: name → value, with the namespace and dimensions of each."""
    found = []
    for line in out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            found.append(document)
    return found


def _metric_values(documents: list[dict], name: str) -> list[float]:
    values = []
    for document in documents:
        if any(m["Name"] == name for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]):
            value = document[name]
            values += value if isinstance(value, list) else [value]
    return values


@pytest.fixture
def on_lambda(monkeypatch):
    """As on Lambda: EMF lines are printed (no daemon address, so no tracing)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fxfer-test")
    monkeypatch.delenv("AWS_XRAY_DAEMON_ADDRESS", raising=False)


# --- one line per request ----------------------------------------------------------------------------------------


def test_a_guest_link_request_logs_its_route_never_its_path():
    _lines()
    token = "A" * 43
    response = Client().get(f"/t/{token}")
    [line] = _requests(_lines())
    assert line["route"] == "/t/<str:token>" and token not in json.dumps(line)
    assert (line["method"], line["status"]) == ("GET", response.status_code)
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert isinstance(line["cold_start"], bool)
    assert len(line["request_id"]) == 32  # generated off Lambda
    assert "user" not in line and "guest" not in line
    # Powertools' line shape: level, location, timestamp (UTC), service.
    assert (line["level"], line["service"]) == ("INFO", "fxfer") and line["timestamp"].endswith("+00:00")


def test_an_unknown_path_is_logged_as_unresolved_with_its_404():
    _lines()
    assert Client().get("/no/such/page").status_code == 404
    [line] = _requests(_lines())
    assert (line["route"], line["status"]) == ("(unresolved)", 404)


def test_a_static_file_is_logged_under_the_static_prefix():
    _lines()
    assert Client().get(f"{settings.STATIC_URL}css/fxfer.css").status_code == 200
    [line] = _requests(_lines())
    assert (line["route"], line["status"]) == (settings.STATIC_URL, 200)


def test_on_lambda_the_request_id_is_lambdas():
    _lines()
    Client().get("/help", **{"lambda.context": SimpleNamespace(aws_request_id="c0ffee-1234")})
    [line] = _requests(_lines())
    assert (line["request_id"], line["route"], line["status"]) == ("c0ffee-1234", "/help", 200)


def test_only_the_first_request_of_a_process_is_a_cold_start(monkeypatch):
    monkeypatch.setattr(observability, "_cold", True)
    _lines()
    Client().get("/help")
    Client().get("/help")
    assert [line["cold_start"] for line in _requests(_lines())] == [True, False]


def test_an_employees_line_names_their_user_key(client):
    sign_in(client)
    _lines()
    assert client.get("/transfers/").status_code == 200
    [line] = _requests(_lines())
    assert line["user"] == alice_id() and "guest" not in line
    assert "alice@example.com" not in json.dumps(line)


def test_a_guests_line_carries_a_keyed_hash_of_the_recipient_never_the_address(client, mailoutbox):
    sign_in(client)
    created = send_small_file(client, mailoutbox)
    guest = Client()
    page = open_link(guest, urlsplit(links(mailoutbox)["bob@partner.example"]).path)
    guest.post(f"{page}/code")
    guest.post(f"{page}/verify", {"code": code_for(mailoutbox, "bob@partner.example")})
    _lines()
    assert guest.get("/guest/files/").status_code == 200
    [line] = _requests(_lines())
    bob = next(r for r in Recipient.query(created["transferId"]) if r.email == "bob@partner.example")
    assert line["guest"] == observability.guest_key(bob.recipient_id) != bob.recipient_id
    assert "user" not in line and "bob@partner.example" not in json.dumps(line)
    # Keyed with the secret key: another key, another id.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "SECRET_KEY", "another-key-entirely")
        assert observability.guest_key(bob.recipient_id) != line["guest"]


def test_the_formatter_redacts_and_drops_objects_even_without_the_filter():
    import logging

    formatter = observability.JsonFormatter()
    record = logging.makeLogRecord(
        {"name": "x", "msg": "opened /t/%s", "args": ("B" * 43,), "levelname": "INFO", "levelno": 20}
    )
    record.request = object()  # Django passes the request object (its repr holds the path)
    record.url = "https://b.example/f?X-Amz-Signature=0123456789abcdef"
    line = json.loads(formatter.format(record))
    assert line["message"] == "opened /t/[redacted]" and line["logger"] == "x"
    assert "request" not in line and line["url"].endswith("X-Amz-Signature=[redacted]")


# --- metrics -----------------------------------------------------------------------------------------------------


def test_a_send_emits_the_transfer_and_bytes_metrics_as_emf(client, mailoutbox, capsys, on_lambda):
    sign_in(client)
    capsys.readouterr()
    send_small_file(client, mailoutbox)
    documents = _emf(capsys.readouterr().out)
    assert _metric_values(documents, observability.TRANSFERS_SENT) == [1.0]
    uploaded = _metric_values(documents, observability.BYTES_UPLOADED)
    assert uploaded == [float(len("こんにちは, small file\n".encode()) * 10)]
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "fxfer"
        assert directive["Dimensions"] == [["service", "stage"]]
        assert (document["service"], document["stage"]) == ("fxfer", settings.FXFER_STAGE)
    units = {m["Name"]: m["Unit"] for d in documents for x in d["_aws"]["CloudWatchMetrics"] for m in x["Metrics"]}
    assert units[observability.BYTES_UPLOADED] == "Bytes"


def test_a_failed_code_and_a_download_are_counted(client, mailoutbox, capsys, on_lambda):
    sign_in(client)
    send_small_file(client, mailoutbox)
    guest = Client()
    page = open_link(guest, urlsplit(links(mailoutbox)["bob@partner.example"]).path)
    guest.post(f"{page}/code")
    right = code_for(mailoutbox, "bob@partner.example")
    capsys.readouterr()
    guest.post(f"{page}/verify", {"code": "000000" if right != "000000" else "111111"})
    assert _metric_values(_emf(capsys.readouterr().out), observability.FAILED_CODES) == [1.0]


def test_off_lambda_no_emf_is_printed(client, mailoutbox, capsys, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    sign_in(client)
    capsys.readouterr()
    send_small_file(client, mailoutbox)
    assert _emf(capsys.readouterr().out) == []


# --- one line per job --------------------------------------------------------------------------------------------


def test_a_job_run_writes_one_line_and_its_outcome_metric(capsys, on_lambda):
    _lines()
    capsys.readouterr()
    result = report_jobs.every_minute({"detail-type": "Scheduled Event"}, SimpleNamespace(aws_request_id="job-1"))
    [line] = _jobs(_lines())
    assert (line["job"], line["outcome"], line["request_id"]) == ("reports.jobs.every_minute", "ok", "job-1")
    assert line["counts"]["linked"] == result["linked"] and "duration_ms" in line
    documents = _emf(capsys.readouterr().out)
    succeeded = [d for d in documents if observability.JOB_SUCCEEDED in d]
    assert [d["job"] for d in succeeded] == ["reports.jobs.every_minute"]
    assert succeeded[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "stage", "job"]]
    assert _metric_values(documents, observability.CHAIN_LAG) == [0.0]  # nothing waits for the chainer


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT, LOST])
def test_a_chainer_lag_that_aws_does_not_give_is_left_out_and_the_job_still_succeeds(kind, caplog, capsys, on_lambda):
    from reports.services import audit_record

    audit_record(action="transfer.created", actor="user:a", subject="transfer:t1")
    capsys.readouterr()
    # The minute job reads the lag after the chainer ran; here the read alone meets the fault.
    with inject(kind, service="dynamodb", operation="Query", times=PERSISTENT) as fault:
        assert observability.record_chain_lag() is None
    assert fault.fired
    assert any(r.getMessage() == "metrics.chain_lag_failed" for r in caplog.records)
    assert _metric_values(_emf(capsys.readouterr().out), observability.CHAIN_LAG) == []
    # Once AWS answers again, the next run measures it.
    assert observability.record_chain_lag() is not None


def test_a_job_that_fails_is_logged_failed_and_counted(monkeypatch, capsys, on_lambda):
    def broken(*, deadline=None):
        raise ValueError("a bug")

    monkeypatch.setattr("reports.chain.audit_chain_link", broken)
    _lines()
    capsys.readouterr()
    answer = report_jobs.every_minute({}, None)
    assert answer["error"] == "ValueError"
    [line] = _jobs(_lines())
    assert (line["job"], line["outcome"]) == ("reports.jobs.every_minute", "failed")
    failed = [d for d in _emf(capsys.readouterr().out) if observability.JOB_FAILED in d]
    assert [d["job"] for d in failed] == ["reports.jobs.every_minute"]


def test_the_sweep_reports_its_deletions(capsys, on_lambda):
    from transfers.jobs import expire_sweep

    capsys.readouterr()
    expire_sweep({"time": "2026-11-30T00:00:00Z"}, None)
    documents = _emf(capsys.readouterr().out)
    assert _metric_values(documents, observability.SWEEP_DELETIONS) == [0.0]
    assert [d["job"] for d in documents if observability.JOB_SUCCEEDED in d] == ["transfers.jobs.expire_sweep"]


# --- tracing -----------------------------------------------------------------------------------------------------

_TRACED_REQUEST = """
import json, os, sys
from moto import mock_aws
with mock_aws():
    import django
    django.setup()
    from django.test import Client
    from fxfer import observability
    from fxfer.provisioning import provision
    list(provision())
    response = Client().get("/healthz")
    Client().get("/t/" + "C" * 43)
    print(json.dumps({
        "status": response.status_code,
        "body": response.content.decode(),
        "tracer": observability._tracer is not None and not observability._tracer.disabled,
        "patched": "aws_xray_sdk.ext.botocore.patch" in sys.modules,
        "xray_imported": any(name.startswith("aws_xray_sdk") for name in sys.modules),
    }))
"""


def _closed_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: nobody listens there


def _run_traced(env_changes: dict) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FXFER_", "_X_AMZN"))},
        "DJANGO_SETTINGS_MODULE": "fxfer.settings.test",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": settings.FXFER_AWS_REGION,
        **env_changes,
    }
    process = subprocess.run(
        [sys.executable, "-c", _TRACED_REQUEST], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


_LAMBDA = {
    "AWS_LAMBDA_FUNCTION_NAME": "fxfer-test",
    "LAMBDA_TASK_ROOT": str(ROOT),
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
}


def test_with_tracing_on_and_no_daemon_listening_a_request_still_answers():
    """As on Lambda with active tracing, but the daemon's address is a port nobody listens on: the SDK's
    segments go nowhere and the page (two AWS calls, each traced) answers as always."""
    result = _run_traced({**_LAMBDA, "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{_closed_udp_port()}"})
    assert result["tracer"] is True and result["patched"] is True
    assert result["status"] == 200 and json.loads(result["body"])["status"] == "ok"


def test_with_a_daemon_each_request_is_a_subsegment_named_by_its_route_and_aws_calls_are_traced():
    import socket

    documents: list[str] = []

    def listen(daemon) -> None:  # read while the process runs: provisioning alone sends hundreds of datagrams
        try:
            while (datagram := daemon.recv(65535)) != DONE:
                documents.append(datagram.decode().split("\n", 1)[1])
        except (TimeoutError, OSError):
            pass

    # Sent once the process has exited: loopback datagrams are queued as they are sent, so every segment of the
    # process is read before it, and the reader stops without waiting out its timeout.
    DONE = b"done"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(5)
        reader = threading.Thread(target=listen, args=(daemon,))
        reader.start()
        result = _run_traced({**_LAMBDA, "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}"})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as done:
            done.sendto(DONE, daemon.getsockname())
        reader.join()
    assert result["status"] == 200
    parsed = [json.loads(d) for d in documents]
    names = {d["name"] for d in parsed}
    assert {"## GET /healthz", "## GET /t/<str:token>"} <= names, names
    assert {"GetItem", "HeadBucket"} <= {d.get("aws", {}).get("operation") for d in parsed}
    assert "C" * 43 not in "".join(documents)  # the guest link's path is in no trace either


def test_off_lambda_nothing_is_traced():
    result = _run_traced({})
    assert (result["tracer"], result["patched"], result["xray_imported"], result["status"]) == (
        False,
        False,
        False,
        200,
    )
