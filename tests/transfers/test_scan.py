"""The malware scan (issue 16): every uploaded file, sent or received, is scanned before release, fail closed.

The stand-in scanner (FXFER_SCANNER "eicar", the tests' default) decides when a file is verified; with
"guardduty" the verdict comes from GuardDuty's EventBridge event (transfers.jobs.on_scan_result) or the object's
GuardDutyMalwareScanStatus tag. The EICAR test string is built here from two halves, so no scanner on a developer's
machine quarantines this file."""

import pytest
from django.conf import settings
from pynamodb.exceptions import TransactWriteError

from fxfer import aws
from reports.models import AuditEvent
from tests.faults import ERROR, LOST, TIMEOUT, inject
from tests.transfers.conftest import (
    ALICE,
    NOW,
    create,
    create_request,
    guest_grant,
    guest_upload,
    later,
    put_object_as_browser,
    tokens_from,
)
from transfers import jobs, selectors, services
from transfers.errors import TransferError
from transfers.models import File, Transfer
from transfers.policy import FileDeclared
from transfers.services import scanning
from transfers.services.gate import release_blockers

BOB = "bob@partner.example"
COMPLIANCE = "compliance@corp.example"
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
INFECTED_BODY = EICAR + b"\r\n"
CLEAN_BODY = b"hello world"


@pytest.fixture(autouse=True)
def _compliance_mail(settings):
    settings.FXFER_COMPLIANCE_EMAIL = [COMPLIANCE]


@pytest.fixture
def guardduty(settings):
    """Production's scanner: nothing decides at verification; the event or the object's tag brings the verdict."""
    settings.FXFER_SCANNER = "guardduty"


def _events(action: str) -> list[AuditEvent]:
    return sorted((e for e in AuditEvent.scan() if e.action == action), key=lambda e: e.sort_key)


def _sent(body: bytes, *, now=NOW, name="report.pdf"):
    """A transfer to Bob with one file, uploaded and reported done the way the browser does."""
    created = create(files=[FileDeclared(name=name, size=len(body))], now=now)
    file = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    put_object_as_browser(file.key, body)
    done = services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=now)
    return created, file, done


def _file(created) -> File:
    return File.get(created.transfer_id, created.files[0].file_id, consistent_read=True)


def _scan_event(file: File, status: str, *, version_id: str | None = None, threats=None) -> dict:
    """GuardDuty Malware Protection for S3's EventBridge event, as the AWS documentation shows it."""
    return {
        "version": "0",
        "id": "72c7d362-737a-6dce-fc78-9e27a0171419",
        "detail-type": "GuardDuty Malware Protection Object Scan Result",
        "source": "aws.guardduty",
        "account": "123456789012",
        "time": "2026-11-28T01:00:30Z",
        "region": "ap-northeast-1",
        "resources": [],
        "detail": {
            "schemaVersion": "1.0",
            "scanStatus": "COMPLETED",
            "resourceType": "S3_OBJECT",
            "s3ObjectDetails": {
                "bucketName": settings.FXFER_BUCKET,
                "objectKey": file.s3_key,
                "eTag": (file.etag or "").strip('"'),
                "versionId": version_id or file.version_id,
                "s3Throttled": False,
            },
            "scanResultDetails": {"scanResultStatus": status, "threats": threats},
        },
    }


def _tag(file: File, status: str) -> None:
    """What GuardDuty does to the scanned object version (the test stands in for it)."""
    aws.client("s3").put_object_tagging(
        Bucket=settings.FXFER_BUCKET,
        Key=file.s3_key,
        VersionId=file.version_id,
        Tagging={"TagSet": [{"Key": scanning.TAG, "Value": status}]},
    )


# --- the stand-in: EICAR blocked, clean released ---------------------------------------------------------------


def test_a_clean_file_is_scanned_then_released(mailoutbox):
    created, _file_created, done = _sent(CLEAN_BODY)
    assert (done.outcome, done.released) == ("verified", True)
    file = _file(created)
    assert (file.scan_required, file.scan_status, file.scan_source) == (True, scanning.CLEAN, "eicar")
    [event] = _events("file.scanned")
    assert (event.outcome, event.details["result"], event.details["file_id"]) == ("ok", scanning.CLEAN, file.file_id)
    assert [m.to for m in mailoutbox] == [[BOB]]
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id)
    assert detail.files[0].scan == scanning.STATE_CLEAN


def test_an_eicar_file_is_blocked_never_released_and_the_sender_and_compliance_are_told(mailoutbox):
    created, _file_created, done = _sent(b"quarterly figures\n" + INFECTED_BODY)
    assert (done.outcome, done.released) == ("verified", False)
    transfer = Transfer.get(created.transfer_id)
    file = _file(created)
    assert transfer.status == "pending" and file.scan_status == scanning.INFECTED
    assert release_blockers(transfer, [file], later(1)) == ("scan",)
    [event] = _events("file.infected")
    assert (event.outcome, event.details["result"], event.details["detail"]) == (
        "refused",
        scanning.INFECTED,
        scanning.EICAR_THREAT,
    )
    # The sender and compliance are told; Bob gets nothing, now or when the release is asked again.
    assert sorted(m.to[0] for m in mailoutbox) == [ALICE.email, COMPLIANCE]
    assert all("Malware found in report.pdf" in m.subject for m in mailoutbox)
    assert services.transfer_release(transfer_id=created.transfer_id, now=later(60)).blockers == ("scan",)
    assert services.expiry_sweep(now=later(60 * 25)).abandoned_deleted == 0  # blocked is not abandoned
    assert sorted(m.to[0] for m in mailoutbox) == [ALICE.email, COMPLIANCE]
    detail = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id)
    assert detail.files[0].scan == scanning.STATE_INFECTED


def test_eicar_anywhere_in_a_large_file_is_found_across_chunk_boundaries(settings):
    body = b"a" * (1024**2 - 10) + INFECTED_BODY  # the string straddles the first 1 MiB chunk's end
    settings.FXFER_MULTIPART_THRESHOLD = 10 * 1024**2
    created, _file_created, done = _sent(body)
    assert done.released is False and _file(created).scan_status == scanning.INFECTED


def test_a_received_eicar_file_is_never_handed_to_the_employee(mailoutbox):
    created = create_request(recipients=[BOB])
    bob = guest_grant(tokens_from(mailoutbox)[BOB], mailoutbox, BOB)
    mailoutbox.clear()
    declared = services.request_files_declare(
        transfer_id=bob.transfer_id,
        recipient_id=bob.recipient_id,
        grant=bob.grant,
        files=[FileDeclared(name="invoice.pdf", size=len(INFECTED_BODY)), FileDeclared(name="ok.pdf", size=11)],
        now=NOW,
    )
    bad, good = declared.files
    assert guest_upload(bob, bad, INFECTED_BODY).outcome == "verified"
    assert guest_upload(bob, good, CLEAN_BODY).outcome == "verified"
    with pytest.raises(TransferError) as caught:
        services.received_download_url(owner_id=ALICE.id, transfer_id=created.request_id, file_id=bad.file_id)
    assert caught.value.code == "state_conflict" and "malware" in caught.value.message
    refused = [e for e in _events("request.downloaded") if e.outcome == "refused"]
    assert [e.details["reason"] for e in refused] == ["scan_infected"]
    # The clean one is the employee's; the employee and compliance are told about the other, the guest is not.
    assert services.received_download_url(owner_id=ALICE.id, transfer_id=created.request_id, file_id=good.file_id)
    assert sorted(m.to[0] for m in mailoutbox) == [ALICE.email, COMPLIANCE]
    page = selectors.request_detail_for_owner(owner_id=ALICE.id, request_id=created.request_id)
    received = {f.name: f.scan for f in page.files}
    assert received == {"invoice.pdf": scanning.STATE_INFECTED, "ok.pdf": scanning.STATE_CLEAN}


# --- GuardDuty: the event, the tag, fail closed ----------------------------------------------------------------


def test_no_verdict_within_the_timeout_never_releases(guardduty, mailoutbox, settings):
    created, _file_created, done = _sent(CLEAN_BODY)
    assert (done.outcome, done.released) == ("verified", False)
    file = _file(created)
    assert scanning.scan_state(file, later(1)) == scanning.STATE_SCANNING
    past = later(settings.FXFER_SCAN_TIMEOUT_MINUTES + 1)
    assert scanning.scan_state(file, past) == scanning.STATE_OVERDUE
    # Neither asking again nor the hourly job (heal, sweep) releases it; the heal counts it as overdue.
    assert services.transfer_release(transfer_id=created.transfer_id, now=past).blockers == ("scan",)
    result = jobs.expire_sweep({"time": later(120).isoformat().replace("+00:00", "Z")})
    assert (result["released"], result["scans_overdue"]) == (0, 1)
    assert Transfer.get(created.transfer_id).status == "pending" and mailoutbox == []
    page = selectors.transfer_detail_for_owner(owner_id=ALICE.id, transfer_id=created.transfer_id, now=past)
    assert page.files[0].scan == scanning.STATE_OVERDUE


def test_the_guardduty_event_releases_once_and_a_repeat_or_a_stale_one_changes_nothing(guardduty, mailoutbox):
    created, _file_created, _done = _sent(CLEAN_BODY)
    file = _file(created)
    stale = jobs.on_scan_result(_scan_event(file, scanning.INFECTED, version_id="another-version"))
    assert stale["outcome"] == "stale" and _file(created).scan_status is None

    first = jobs.on_scan_result(_scan_event(file, scanning.CLEAN))
    assert (first["outcome"], first["status"]) == ("recorded", scanning.CLEAN)
    assert Transfer.get(created.transfer_id).status == "ready" and [m.to for m in mailoutbox] == [[BOB]]
    assert _file(created).scan_source == "guardduty"

    again = jobs.on_scan_result(_scan_event(file, scanning.INFECTED))  # a late, different one: the first stands
    assert again["outcome"] == "duplicate" and _file(created).scan_status == scanning.CLEAN
    assert len(_events("file.scanned")) == 1 and _events("file.infected") == [] and len(mailoutbox) == 1


def test_an_event_for_another_bucket_or_kind_is_ignored(guardduty):
    created, _file_created, _done = _sent(CLEAN_BODY)
    event = _scan_event(_file(created), scanning.CLEAN)
    event["detail"]["s3ObjectDetails"]["bucketName"] = "someone-elses-bucket"
    assert jobs.on_scan_result(event) == {"outcome": "ignored"}
    assert _file(created).scan_status is None


@pytest.mark.parametrize("status", ["UNSUPPORTED", "ACCESS_DENIED", "FAILED", "SOMETHING_NEW"])
def test_a_file_that_could_not_be_scanned_is_blocked_until_compliance_decides(guardduty, mailoutbox, status):
    created, _file_created, _done = _sent(CLEAN_BODY)
    jobs.on_scan_result(_scan_event(_file(created), status))
    file = _file(created)
    assert scanning.scan_state(file, later(1)) == scanning.STATE_UNSCANNABLE
    assert Transfer.get(created.transfer_id).status == "pending"
    assert [e.outcome for e in _events("file.unscannable")] == ["refused"]
    assert sorted(m.to[0] for m in mailoutbox) == [ALICE.email, COMPLIANCE]


def test_an_event_before_the_verification_is_read_back_from_the_tag(guardduty, mailoutbox):
    """GuardDuty may finish before fxfer verifies the object: the event finds no verified file, and the
    verification reads the verdict from the tag GuardDuty left."""
    created = create(files=[FileDeclared(name="report.pdf", size=len(CLEAN_BODY))])
    file = _file(created)
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.s3_key, CLEAN_BODY)
    version = aws.client("s3").head_object(Bucket=settings.FXFER_BUCKET, Key=file.s3_key)["VersionId"]
    file.version_id = version
    assert jobs.on_scan_result(_scan_event(file, scanning.CLEAN))["outcome"] == "not_verified"
    _tag(file, scanning.CLEAN)
    done = services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    assert done.released is True and _file(created).scan_source == "tag"


def test_a_lost_event_is_healed_from_the_tag_by_the_hourly_job(guardduty, mailoutbox):
    created, _file_created, _done = _sent(CLEAN_BODY)
    _tag(_file(created), scanning.CLEAN)  # GuardDuty tagged it; its event never arrived
    result = jobs.expire_sweep({"time": later(60).isoformat().replace("+00:00", "Z")})
    assert result["scans_recorded"] == 1
    assert Transfer.get(created.transfer_id).status == "ready" and [m.to for m in mailoutbox] == [[BOB]]


def test_a_received_file_waiting_for_its_verdict_is_refused_then_settled_from_the_tag(guardduty, mailoutbox):
    created = create_request(recipients=[BOB])
    bob = guest_grant(tokens_from(mailoutbox)[BOB], mailoutbox, BOB)
    [declared] = services.request_files_declare(
        transfer_id=bob.transfer_id,
        recipient_id=bob.recipient_id,
        grant=bob.grant,
        files=[FileDeclared(name="ok.pdf", size=11)],
        now=NOW,
    ).files
    guest_upload(bob, declared, CLEAN_BODY)
    with pytest.raises(TransferError) as caught:
        services.received_download_url(owner_id=ALICE.id, transfer_id=created.request_id, file_id=declared.file_id)
    assert "still being scanned" in caught.value.message
    _tag(File.get(created.request_id, declared.file_id), scanning.CLEAN)
    assert services.received_download_url(owner_id=ALICE.id, transfer_id=created.request_id, file_id=declared.file_id)


# --- faults below botocore's retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("times", [1, 10])
def test_a_lost_answer_at_the_verdicts_transaction_is_recognised(guardduty, mailoutbox, times):
    created, _file_created, _done = _sent(CLEAN_BODY)
    event = _scan_event(_file(created), scanning.CLEAN)
    with inject(LOST, service="dynamodb", operation="TransactWriteItems", nth=1, times=times) as fault:
        result = jobs.on_scan_result(event)
    assert fault.fired and result["outcome"] == "recorded"
    assert len(_events("file.scanned")) == 1
    assert Transfer.get(created.transfer_id).status == "ready" and [m.to for m in mailoutbox] == [[BOB]]


def test_aws_failing_at_the_verdicts_transaction_raises_so_lambda_retries(guardduty, mailoutbox):
    created, _file_created, _done = _sent(CLEAN_BODY)
    event = _scan_event(_file(created), scanning.CLEAN)
    busy = inject(ERROR, service="dynamodb", operation="TransactWriteItems", nth=1, times=10)
    with busy, pytest.raises(TransactWriteError):
        jobs.on_scan_result(event)
    assert _file(created).scan_status is None and _events("file.scanned") == []
    assert jobs.on_scan_result(event)["outcome"] == "recorded"  # Lambda's retry
    assert Transfer.get(created.transfer_id).status == "ready"


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT, LOST])
def test_get_object_tagging_failing_leaves_the_file_blocked_not_the_upload_failed(guardduty, mailoutbox, kind):
    created = create(files=[FileDeclared(name="report.pdf", size=len(CLEAN_BODY))])
    file = created.files[0]
    services.upload_authorize(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    put_object_as_browser(file.key, CLEAN_BODY)
    version = aws.client("s3").head_object(Bucket=settings.FXFER_BUCKET, Key=file.key)["VersionId"]
    _tag(File(s3_key=file.key, version_id=version), scanning.CLEAN)
    with inject(kind, service="s3", operation="GetObjectTagging", nth=1, times=10) as fault:
        done = services.upload_done(owner_id=ALICE.id, transfer_id=created.transfer_id, file_id=file.file_id, now=NOW)
    assert fault.fired and (done.outcome, done.released) == ("verified", False)
    # A lost answer is a read's: botocore's retry would have had it; here every try lost it. The next repeat
    # (a second S3 event, the heal) reads the tag.
    again = services.file_verify(key=file.key, now=later(1))
    assert again.released is True and [m.to for m in mailoutbox] == [[BOB]]


def test_a_file_blocked_after_its_transfer_left_is_refused_to_the_guest(guardduty, mailoutbox):
    """Compliance released a file whose scan hung; the verdict that then comes says malware: the guest's list
    says so and their download is refused (and audited), though the transfer had been sent."""
    created, file_created, _done = _sent(CLEAN_BODY)
    released = scanning.file_scan_release(
        officer_id="u-carol",
        transfer_id=created.transfer_id,
        file_id=file_created.file_id,
        reason="The scan hangs; the customer waits",
        now=later(40),
    )
    assert (released.overridden, released.released) == (scanning.NO_VERDICT, True)
    bob = guest_grant(tokens_from(mailoutbox)[BOB], mailoutbox, BOB, now=later(41))
    jobs.on_scan_result(_scan_event(_file(created), scanning.INFECTED, threats=[{"name": "Trojan.Test"}]))
    [shown] = selectors.guest_files(
        transfer_id=bob.transfer_id, recipient_id=bob.recipient_id, grant=bob.grant, now=later(42)
    ).files
    assert (shown.scan, shown.scan_blocked) == (scanning.STATE_INFECTED, True)
    with pytest.raises(TransferError) as caught:
        services.guest_download_url(
            transfer_id=bob.transfer_id,
            recipient_id=bob.recipient_id,
            grant=bob.grant,
            file_id=file_created.file_id,
            now=later(42),
        )
    assert caught.value.code == "state_conflict" and "malware" in caught.value.message
    refused = [e for e in _events("download.url_issued") if e.outcome == "refused"]
    assert [e.details["reason"] for e in refused] == ["scan_infected"]
    assert [e.details["detail"] for e in _events("file.infected")] == ["Trojan.Test"]
