"""One AWS client per process (issue 15): boto3's, PynamoDB's and django-ses's clients are built once, from one
botocore session, by whichever thread comes first, and reused by every request after; sending mail never
sleeps inside a request."""

import threading
import time

import botocore.session
import django_ses
import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.mail import EmailMessage
from django.test import Client
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pynamodb.connection.base import Connection

from devtools.idp import server as idp
from devtools.idp.identities import DEMO_IDENTITIES
from fxfer import aws, dynamo
from fxfer.change import Change
from fxfer.settings import base
from reports.models import AuditEvent
from tests.accounts.conftest import post_to_acs, start_signin
from tests.faults import ERROR, PERSISTENT, inject
from tests.transfers.conftest import code_from, put_object_as_browser, ready_transfer
from tests.transfers.guest_links import open_link
from transfers import storage

BOB = "bob@partner.example"


class Built:
    """Every botocore client (any session's: boto3, PynamoDB, django-ses) and PynamoDB connection built."""

    def __init__(self) -> None:
        self.clients: list[str] = []
        self.connections = 0

    def clear(self) -> None:
        self.clients.clear()
        self.connections = 0


@pytest.fixture
def built(monkeypatch) -> Built:
    seen = Built()
    create_client, connection_init = botocore.session.Session.create_client, Connection.__init__

    def counting_client(self, service_name, *args, **kwargs):
        seen.clients.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    def counting_connection(self, *args, **kwargs):
        seen.connections += 1
        connection_init(self, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting_client)
    monkeypatch.setattr(Connection, "__init__", counting_connection)
    return seen


@pytest.fixture
def transfer_bucket():
    """As tests/transfers/conftest.py: a fresh KMS key's ARN, and no bucket policy (moto ignores its conditions)."""
    storage.forget_kms_key_arn()
    aws.client("s3").delete_bucket_policy(Bucket=settings.FXFER_BUCKET)
    yield
    storage.forget_kms_key_arn()


@pytest.fixture
def ses_mail(settings):
    """Mail through the configured backend to moto's SES (pytest-django swaps in the locmem backend)."""
    settings.EMAIL_BACKEND = base.EMAIL_BACKEND
    return ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """Every sleep asked for (django-ses imported `sleep` from `time` under its own name)."""
    asked: list[float] = []
    monkeypatch.setattr(time, "sleep", asked.append)
    monkeypatch.setattr(django_ses, "sleep", asked.append)
    return asked


# --- one client per service and settings, whoever asks --------------------------------------------------------


def test_the_same_service_and_settings_give_the_same_client():
    assert aws.client("s3") is aws.client("s3")
    assert aws.client("s3", timeout_seconds=2, attempts=1) is aws.client("s3", timeout_seconds=2, attempts=1)
    assert aws.client("s3", timeout_seconds=2, attempts=1) is not aws.client("s3")
    assert dynamo.connection() is dynamo.connection()


def test_a_changed_endpoint_gets_its_own_client_and_the_old_one_comes_back(settings):
    s3, transactions = aws.client("s3"), dynamo.connection()
    original_s3, original_dynamodb = settings.FXFER_S3_ENDPOINT, settings.FXFER_DYNAMODB_ENDPOINT
    settings.FXFER_S3_ENDPOINT = settings.FXFER_DYNAMODB_ENDPOINT = "http://127.0.0.1:9"
    assert aws.client("s3").meta.endpoint_url == "http://127.0.0.1:9"
    assert dynamo.connection().host == "http://127.0.0.1:9"
    settings.FXFER_S3_ENDPOINT, settings.FXFER_DYNAMODB_ENDPOINT = original_s3, original_dynamodb
    assert aws.client("s3") is s3 and dynamo.connection() is transactions


def test_signing_the_csp_origins_uses_the_process_s3_client_whatever_its_timeouts(built, settings):
    settings.FXFER_S3_ENDPOINT = f"http://127.0.0.1:{9000 + time.time_ns() % 1000}"  # no client has it yet
    checker = aws.client("s3", timeout_seconds=2, attempts=1)  # as the health check's
    built.clear()
    assert aws.s3_browser_origins() == [settings.FXFER_S3_ENDPOINT]
    assert aws.signing_client("s3") is checker
    assert built.clients == []


def test_threads_asking_at_once_build_one_client(built):
    threads, barrier, got = 8, threading.Barrier(8), []
    timeout = 7 + time.time_ns() % 1000 / 1000  # settings nobody asked for before: the client is built here

    def ask():
        barrier.wait()
        got.append(aws.client("kms", timeout_seconds=timeout))

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(got) == threads and len({id(c) for c in got}) == 1
    assert built.clients == ["kms"]


def test_models_and_transactions_build_their_clients_from_the_process_session():
    models = list(dynamo.all_models())
    assert len(models) > 10
    for model in models:
        assert model._get_connection().connection.session is aws.botocore_session(), model.__name__
    assert dynamo.connection().session is aws.botocore_session()


def test_an_injected_fault_reaches_a_client_built_before_it():
    s3 = aws.client("s3")
    s3.head_bucket(Bucket=settings.FXFER_BUCKET)
    with inject(ERROR, service="s3", operation="HeadBucket", times=PERSISTENT) as fault:
        with pytest.raises(ClientError):
            aws.client("s3").head_bucket(Bucket=settings.FXFER_BUCKET)
    assert fault.fired == 4  # the first try and its three retries (botocore counts retries in max_attempts)


# --- requests build nothing after the first -----------------------------------------------------------------------


def test_guest_walks_build_no_client_or_connection_after_the_first(built, transfer_bucket, mailoutbox, settings):
    """Open the link, get a code by mail, enter it, download: every AWS service a guest touches (DynamoDB reads,
    conditional writes and transactions, S3 presigning), and nothing built for the second guest on."""
    settings.FXFER_LINK_LOOKUPS_PER_IP = 1000  # every guest of this test comes from the test client's address
    guests = [f"guest{n}@partner.example" for n in range(8)]
    created, tokens = ready_transfer(recipients=guests, mailoutbox=mailoutbox)
    file_id = created.files[0].file_id

    def walk(to: str):
        guest = Client()
        page = open_link(guest, f"/t/{tokens[to]}")
        assert guest.get(page).status_code == 200
        sent = guest.post(f"{page}/code")
        assert guest.post(sent["Location"], {"code": code_from(mailoutbox, to)})["Location"] == "/guest/files/"
        assert guest.get("/guest/files/").status_code == 200
        assert guest.post(f"/guest/files/{file_id}/download").status_code == 303

    walk(guests[0])
    built.clear()
    for to in guests[1:]:
        walk(to)
    assert built.clients == [] and built.connections == 0


def test_audit_events_build_no_client_or_connection_after_the_first(built):
    def record(n: int):
        change = Change(op=f"thing:{n}")
        change.audit("thing.made", actor="user:u1", subject=f"transfer:t{n}")
        change.commit()

    record(0)
    built.clear()
    for n in range(1, 11):
        record(n)
    assert built.clients == [] and built.connections == 0
    assert len(list(AuditEvent.scan())) == 11


# --- mail ---------------------------------------------------------------------------------------------------------


def test_sending_mails_builds_one_ses_client(built, ses_mail):
    for n in range(6):
        # Django builds a new backend for every mail sent this way.
        EmailMessage(subject=f"Mail {n}", body="Hello.", to=[BOB]).send()
    assert built.clients.count("ses") <= 1  # none when an earlier test of this process built it
    assert len(ses_mail) == 6


def test_a_release_to_many_recipients_mails_each_without_sleeping(transfer_bucket, ses_mail, no_sleep, client):
    started = start_signin(client)
    answer = idp.authn_response(idp.idp_server(), identity=DEMO_IDENTITIES["alice"], in_response_to=started.request_id)
    assert post_to_acs(client, answer, started.relay_state).status_code == 302
    recipients = [f"guest{n}@partner.example" for n in range(6)]
    body = b"figures\n"
    created = client.post(
        "/transfers/new",
        {
            "recipients": ", ".join(recipients),
            "subject": "Quarterly figures",
            "message": "Here they are.",
            "expiry_amount": 7,
            "expiry_unit": "days",
            "download_limit": 2,
            "files": [{"name": "figures.txt", "size": len(body), "type": "text/plain"}],
        },
        content_type="application/json",
    ).json()
    file_url = f"/transfers/{created['transferId']}/files/{created['files'][0]['fileId']}"
    authorized = client.post(f"{file_url}/authorize", {}, content_type="application/json").json()
    put_object_as_browser(authorized["fields"]["key"], body)

    done = client.post(f"{file_url}/done", {}, content_type="application/json")  # releases: one mail each

    assert done.json()["released"] is True
    assert len(ses_mail) == len(recipients)
    assert sorted({address for m in ses_mail for address in m.destinations}) == sorted(recipients)
    assert no_sleep == []
