"""My transfers and Received cost a fixed number of DynamoDB calls however many rows they show (issue 15): the
sign-in's session and user, one Query for the page, and one BatchGetItem for every row's recipients (a request's
files too, My transfers' quota usage too), instead of a Query per row. Calls are counted with botocore's
before-send hook (tests/faults.py records every AWS call made through any client)."""

import itertools
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.faults import ERROR, PERSISTENT, inject, recording, sweep_faults
from tests.transfers.conftest import (
    NOW,
    Sender,
    as_guest,
    create,
    create_request,
    guest_grant,
    put_object_as_browser,
    tokens_from,
)
from tests.transfers.test_request_views import guest_in, upload_small
from tests.transfers.test_views import alice_id, links, sign_in, text
from transfers import selectors, services
from transfers.models import File, Recipient, Transfer
from transfers.policy import FileDeclared, bytes_text
from transfers.services.quota import quota_state

BOB, CAROL = "bob@partner.example", "carol@partner.example"
_numbers = itertools.count()


@dataclass(frozen=True)
class Alice:
    """Alice as her SAML sign-in makes her, so what the services create for her is on her pages."""

    id: str
    email: str = "alice@example.com"
    display_name: str = "Alice"


@pytest.fixture
def alice(client):
    client.defaults["HTTP_USER_AGENT"] = "pytest-browser/1.0"
    return sign_in(client)


@pytest.fixture
def sender():
    return Alice(id=alice_id())


def dynamodb_calls(fault) -> list[str]:
    return [operation for service, operation in fault.calls if service == "dynamodb"]


def _after(number: int):
    return NOW + timedelta(seconds=1 + number)


def rows(page: str) -> list[str]:
    return page.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")[:-1]


def downloaded_once(sender, mailoutbox) -> str:
    """A released transfer whose file Bob downloaded once; its id."""
    created = create(sender=sender, subject="Downloaded", recipients=[BOB, CAROL])
    file = created.files[0]
    ids = {"owner_id": sender.id, "transfer_id": created.transfer_id, "file_id": file.file_id, "now": NOW}
    services.upload_authorize(**ids)
    put_object_as_browser(file.key, b"hello world")
    assert services.upload_done(**ids).released
    access = guest_grant(tokens_from(mailoutbox)[BOB], mailoutbox, BOB)
    services.guest_download_url(
        transfer_id=access.transfer_id,
        recipient_id=access.recipient_id,
        grant=access.grant,
        file_id=file.file_id,
        now=NOW,
    )
    return created.transfer_id


def test_my_transfers_of_50_costs_four_dynamodb_calls_and_shows_every_rows_recipients(alice, sender, mailoutbox):
    downloaded = downloaded_once(sender, mailoutbox)
    for number in range(49):
        create(sender=sender, subject=f"Transfer {number:02d}", recipients=[BOB, CAROL], now=_after(number))
        create_request(sender=sender, subject=f"Request {number:02d}", recipients=[BOB], now=_after(number))
    with recording() as fault:
        response = alice.get("/transfers/")
    page = text(response)
    assert response.status_code == 200
    calls = dynamodb_calls(fault)
    assert len(calls) <= 4, calls  # the session, the user, the page's Query, one BatchGetItem
    assert calls.count("Query") == 1 and calls.count("BatchGetItem") == 1, calls
    shown = rows(page)
    assert len(shown) == 20 and "Transfer 48" in shown[0]  # newest first, a page of 20
    for row in shown:
        assert f'{BOB}: <span class="downloads">0 downloads</span>' in row, row
        assert f'{CAROL}: <span class="downloads">0 downloads</span>' in row, row
    # The downloaded transfer, on the last page: Bob's download is counted there.
    while 'href="?cursor=' in page and downloaded not in page:
        cursor = re.search(r'href="\?cursor=([^"]+)"', page)[1]
        page = text(alice.get("/transfers/", {"cursor": cursor}))
    row = next(r for r in rows(page) if downloaded in r)
    assert f'{BOB}: <span class="downloads">1 download</span>' in row and f"{CAROL}: " in row
    # The quota read with the page's BatchGetItem says what quota_state says.
    usage = quota_state(user_id=sender.id)
    assert usage.in_flight == 50 * 11
    assert f"In transfers still being kept: 550 B of your {bytes_text(usage.allowance)} allowance." in page


def test_a_page_whose_rows_hold_more_than_a_hundred_recipients_shows_them_all(alice, sender):
    guests = [f"guest{n}@partner.example" for n in range(6)]
    for number in range(20):
        create(sender=sender, subject=f"Transfer {number:02d}", recipients=guests)
    with recording() as fault:
        page = text(alice.get("/transfers/"))
    assert dynamodb_calls(fault).count("BatchGetItem") == 2  # 121 keys: a hundred a call
    for row in rows(page):
        assert all(f'{guest}: <span class="downloads">0 downloads</span>' in row for guest in guests), row


def test_received_of_50_costs_four_dynamodb_calls_and_shows_guests_and_files(alice, sender, mailoutbox):
    first = create_request(sender=sender, subject="Request with files", recipients=[BOB, CAROL])
    bob = guest_in(mailoutbox, links(mailoutbox)[BOB])
    upload_small(bob, "signed-contract.pdf")
    upload_small(bob, "invoice.pdf")
    for number in range(49):
        create_request(sender=sender, subject=f"Request {number:02d}", recipients=[BOB, CAROL], now=_after(number))
        create(sender=sender, subject=f"Transfer {number:02d}", recipients=[BOB], now=_after(number))
    with recording() as fault:
        response = alice.get("/requests/")
    page = text(response)
    assert response.status_code == 200
    calls = dynamodb_calls(fault)
    assert len(calls) <= 4, calls  # the session, the user, the page's Query, one BatchGetItem
    shown = rows(page)
    assert len(shown) == 20
    for row in shown:
        assert BOB in row and CAROL in row and "Nothing yet" in row, row
    page = text(alice.get("/requests/", {"cursor": re.search(r'href="\?cursor=([^"]+)"', page)[1]}))
    page = text(alice.get("/requests/", {"cursor": re.search(r'href="\?cursor=([^"]+)"', page)[1]}))
    row = next(r for r in rows(page) if first.request_id in r)
    assert "signed-contract.pdf" in row and "invoice.pdf" in row and f", {BOB}, " in row and "Nothing yet" not in row


def test_rows_made_before_the_ids_were_kept_are_still_shown_whole(alice, sender, mailoutbox):
    """Items written before transfers kept their children's ids are queried row by row, as before."""
    create(sender=sender, subject="Old transfer", recipients=[BOB, CAROL])
    request = create_request(sender=sender, subject="Old request", recipients=[BOB])
    upload_small(guest_in(mailoutbox, links(mailoutbox)[BOB]), "old-upload.pdf")
    for item in Transfer.scan():
        item.update(actions=[Transfer.recipient_ids.remove(), Transfer.file_ids.remove()])
    assert all(t.recipient_ids is None and t.file_ids is None for t in Transfer.scan())
    mine = text(alice.get("/transfers/"))
    assert f'{BOB}: <span class="downloads">0 downloads</span>' in mine and f"{CAROL}: " in mine
    received = text(alice.get("/requests/"))
    row = next(r for r in rows(received) if request.request_id in r)
    assert "old-upload.pdf" in row and BOB in row


def test_a_cancelled_file_is_not_listed(alice, sender, mailoutbox):
    request = create_request(sender=sender, subject="Request", recipients=[BOB])
    bob = guest_in(mailoutbox, links(mailoutbox)[BOB])
    upload_small(bob, "kept.pdf")
    upload_small(bob, "dropped.pdf")
    dropped = next(f for f in File.query(request.request_id) if f.name == "dropped.pdf")
    dropped.update(actions=[File.state.set("cancelled")])
    row = rows(text(alice.get("/requests/")))[0]
    assert "kept.pdf" in row and "dropped.pdf" not in row


@pytest.mark.parametrize("path", ["/transfers/", "/requests/"])
def test_a_list_page_survives_a_failed_batch_read_and_says_busy_when_it_keeps_failing(alice, sender, path):
    create(sender=sender, subject="A transfer", recipients=[BOB])
    create_request(sender=sender, subject="A request", recipients=[BOB])
    with inject(ERROR, service="dynamodb", operation="BatchGetItem") as fault:
        response = alice.get(path)
    assert fault.fired and response.status_code == 200 and BOB in text(response)
    with inject(ERROR, service="dynamodb", operation="BatchGetItem", times=PERSISTENT) as fault:
        response = alice.get(path)
    assert fault.fired and response.status_code == 503
    assert "Nothing was lost; please try again in a minute." in text(response)


def test_a_guests_declaration_keeps_the_file_ids_on_the_request(sender, mailoutbox):
    request = create_request(sender=sender, subject="Request", recipients=[BOB])
    upload_small(guest_in(mailoutbox, links(mailoutbox)[BOB]), "a.pdf")
    access = guest_grant(tokens_from(mailoutbox)[BOB], mailoutbox, BOB)
    files = [FileDeclared(name="b.pdf", size=3), FileDeclared(name="c.pdf", size=4)]
    declared = services.request_files_declare(**as_guest(access), files=files, now=NOW).files
    kept = Transfer.get(request.request_id, consistent_read=True)
    assert kept.file_ids == {f.file_id for f in File.query(request.request_id)} and len(kept.file_ids) == 3
    assert {f.file_id for f in declared} <= kept.file_ids
    assert kept.recipient_ids == {r.recipient_id for r in Recipient.query(request.request_id)}


def _declaring_guest():
    from django.core import mail
    from django.test.utils import override_settings

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        owner = Sender(id=f"u-sweep-{next(_numbers)}")  # a list of one row: this case's request
        created = create_request(sender=owner, recipients=[BOB], subject="contract")
        access = guest_grant(tokens_from(mail.outbox)[BOB], mail.outbox, BOB)
    return {"access": access, "request_id": created.request_id, "owner_id": owner.id}


def _declare(state):
    files = [FileDeclared(name="a.pdf", size=5), FileDeclared(name="b.pdf", size=6)]
    return services.request_files_declare(**as_guest(state["access"]), files=files, now=NOW)


def _declare_check(state, result, error):
    """Whatever failed: every file the request has is on the Received list (its id is on the request), and the
    request's totals count exactly those files; told "declared", they are all there."""
    files = list(File.query(state["request_id"], consistent_read=True))
    request = Transfer.get(state["request_id"], consistent_read=True)
    assert {f.file_id for f in files} <= (request.file_ids or set()), "a file the Received list would not show"
    assert int(request.file_count) == len(files), "the totals and the files did not commit together"
    [row] = selectors.request_list_for_owner(owner_id=state["owner_id"]).items
    assert {f.file_id for f in row.files} == {f.file_id for f in files}
    if error is None:
        assert {f.file_id for f in result.files} == {f.file_id for f in files}, "told declared, but not there"


def test_a_declaration_under_every_fault_keeps_the_list_whole(settings):
    settings.FXFER_LINK_LOOKUPS_PER_IP = 100_000  # every set-up opens a link from the same (test) address
    settings.FXFER_CODE_SENDS_PER_WINDOW = 100_000
    sweep_faults("request declare (list)", setup=_declaring_guest, act=_declare, check=_declare_check)
