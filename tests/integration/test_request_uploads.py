"""Upload requests attacked from the guest's side, against LocalStack's S3 (which enforces POST policies,
content-length-range and presigned-URL signatures) and through the guest's own views and endpoints. A guest
holds a session for one request and the POST policies and part URLs the server handed them; each test tries
to use those for more than one declared file of that request, and S3 or the server refuses.

Started and provisioned by `python -m devtools.stack --provision`; the stand-ins' state is shared by every
test, so each test asks its own guests (unique addresses) in its own request."""

import base64
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.test import Client

from fxfer import aws, provisioning
from reports.models import AuditEvent
from tests.transfers.conftest import ANY_CRC, checksums_of, crc64nvme
from tests.transfers.guest_links import open_link
from transfers import jobs, services, storage
from transfers.errors import TransferError
from transfers.models import File, Recipient, Transfer

pytestmark = pytest.mark.integration

MiB = 1024**2
LINK = re.compile(r"/t/([A-Za-z0-9_-]{43})")
CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)
BODY = b"signed contract, page 1 of 1\n"
_addresses = itertools.count(1)


@dataclass(frozen=True)
class Employee:
    id: str
    email: str = "alice@corp.example"
    display_name: str = "Alice Sender"


@dataclass
class Guest:
    """A guest's browser: Django's test client holding their guest session (and an address of its own, so
    the per-IP link brake of one test does not reach another)."""

    client: Client
    email: str
    token: str

    def json(self, path: str, data: dict | None = None):
        return self.client.post(path, json.dumps(data or {}), content_type="application/json")

    def declare(self, *files: tuple[str, int]):
        return self.json("/guest/upload/files", {"files": [{"name": n, "size": s, "type": ""} for n, s in files]})

    def declared(self, *files: tuple[str, int]) -> list[str]:
        response = self.declare(*files)
        assert response.status_code == 201, response.content
        return [f["fileId"] for f in response.json()["files"]]

    def endpoint(self, file_id: str, action: str, data: dict | None = None):
        return self.json(f"/guest/upload/files/{file_id}/{action}", data)

    def signed(self, file_id: str, authorized: dict, body: bytes) -> dict:
        """`authorized` with a URL for every part of `body`, each signed for its part's CRC-64/NVME (kept in
        "crcs" for the PUT's header), as the uploader asks for them."""
        size, count = authorized["partSize"], authorized["partCount"]
        crcs = {str(n): crc64nvme(body[(n - 1) * size : n * size]) for n in range(1, count + 1)}
        answer = self.endpoint(file_id, "parts", {"uploadId": authorized["uploadId"], "parts": crcs})
        assert answer.status_code == 200, answer.content
        return {**authorized, "partUrls": answer.json()["partUrls"], "crcs": crcs}

    def authorized(self, file_id: str) -> dict:
        response = self.endpoint(file_id, "authorize")
        assert response.status_code == 200, response.content
        return response.json()

    def upload(self, file_id: str, body: bytes) -> dict:
        """Authorize, POST to S3 as the browser does, then "done": the server's verdict."""
        assert s3_post(self.authorized(file_id), body).status_code == 201
        response = self.endpoint(file_id, "done")
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def alice() -> Employee:
    return Employee(id=f"u-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def small_parts(settings):
    """Files of 6 MiB and more go up in 5 MiB parts (S3's smallest)."""
    settings.FXFER_MULTIPART_THRESHOLD = 6 * MiB
    settings.FXFER_MULTIPART_PART_BYTES = 5 * MiB


def unique_address(name: str = "guest") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@partner.example"


def ask(employee: Employee, mailoutbox, *guests: str, **limits) -> tuple[str, dict[str, str]]:
    """Alice asks the guests for files; each one's link token, read from their own mail."""
    created = services.request_create(
        sender=employee, recipients=list(guests), subject="Signed contract", message="Please send it.", **limits
    )
    tokens = {m.to[0]: LINK.search(m.body)[1] for m in mailoutbox if m.to[0] in guests and LINK.search(m.body)}
    assert set(tokens) == set(guests) and created.mails_sent == len(guests)
    return created.request_id, tokens


def guest_in(mailoutbox, token: str, email: str) -> Guest:
    """Follow the link, get a code, enter it: the guest's session for the request's upload page."""
    client = Client(REMOTE_ADDR=f"198.51.100.{next(_addresses) % 250 + 1}", HTTP_USER_AGENT="guest-browser/1.0")
    page = open_link(client, f"/t/{token}")  # the token moves into a cookie; the pages after it are token-free
    assert client.post(f"{page}/code").status_code == 303
    code = next(CODE.search(m.body)[1] for m in reversed(mailoutbox) if m.to == [email] and "code" in m.subject)
    response = client.post(f"{page}/verify", {"code": code})
    assert (response.status_code, response["Location"]) == (303, "/guest/upload/")
    return Guest(client=client, email=email, token=token)


def s3_post(authorized: dict, body: bytes, **field_changes) -> requests.Response:
    """The browser's POST to S3: the server's fields (some changed by the attacker), then the file."""
    fields = {k: v for k, v in {**authorized["fields"], **field_changes}.items() if v is not None}
    return requests.post(authorized["url"], data=fields, files={"file": ("x", body)}, timeout=30)


def s3_put_parts(authorized: dict, body: bytes) -> None:
    """PUT each part with the CRC-64/NVME its URL was signed for (Guest.signed)."""
    size = authorized["partSize"]
    for number, url in authorized["partUrls"].items():
        chunk = body[(int(number) - 1) * size : int(number) * size]
        headers = {"x-amz-checksum-crc64nvme": authorized["crcs"][number]}
        response = requests.put(url, data=chunk, headers=headers, timeout=60)
        assert response.status_code == 200, response.text


def nothing_at(key: str) -> bool:
    return storage.object_head(key=key) is None


def versions_of(key: str) -> list[str]:
    listed = aws.client("s3").list_object_versions(Bucket=settings.FXFER_BUCKET, Prefix=key)
    return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]


def employee_download(employee: Employee, request_id: str, file_id: str) -> bytes:
    issued = services.received_download_url(owner_id=employee.id, transfer_id=request_id, file_id=file_id)
    response = requests.get(issued.url, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def s3_record(key: str, size: int, version_id: str | None = None) -> dict:
    """One record of S3's ObjectCreated notification, as the Lambda receives it."""
    s3_object = {"key": key, "size": size, **({"versionId": version_id} if version_id else {})}
    return {"s3": {"bucket": {"name": settings.FXFER_BUCKET}, "object": s3_object}}


def audited(request_id: str) -> list[str]:
    return [e.action for e in AuditEvent.by_subject.query(f"transfer:{request_id}")]


def key_of(request_id: str, file_id: str) -> str:
    return storage.file_key(parent_id=request_id, file_id=file_id)


# --- the way it is meant to work -------------------------------------------------------------------------------


def test_a_guest_uploads_a_small_and_a_multipart_file_and_the_employee_gets_exactly_them(
    alice, mailoutbox, small_parts
):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    big = bytes(range(256)) * (7 * MiB // 256)  # parts of 5 and 2 MiB
    small_id, big_id = guest.declared(("contract.pdf", len(BODY)), ("scans.zip", len(big)))

    assert guest.upload(small_id, BODY)["outcome"] == "verified"
    authorized = guest.signed(big_id, guest.authorized(big_id), big)
    assert (authorized["mode"], authorized["partCount"], sorted(authorized["partUrls"])) == ("multipart", 2, ["1", "2"])
    s3_put_parts(authorized, big)
    completed = guest.endpoint(
        big_id, "complete", {"uploadId": authorized["uploadId"], **checksums_of(big, real_crc=True)}
    )
    assert (completed.status_code, completed.json()["outcome"]) == (200, "verified")

    assert employee_download(alice, request_id, small_id) == BODY
    assert employee_download(alice, request_id, big_id) == big
    page = guest.client.get("/guest/upload/").content.decode()
    assert page.count("Received and checked") == 2


# --- keys: a policy is for one key ----------------------------------------------------------------------------


def test_a_guests_policy_cannot_put_a_file_into_another_request(alice, mailoutbox):
    mine, theirs = unique_address("mine"), unique_address("theirs")
    request_id, tokens = ask(alice, mailoutbox, mine)
    other_request_id, other_tokens = ask(alice, mailoutbox, theirs)
    guest = guest_in(mailoutbox, tokens[mine], mine)
    other = guest_in(mailoutbox, other_tokens[theirs], theirs)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    (other_file_id,) = other.declared(("invoice.pdf", len(BODY)))
    other_key = key_of(other_request_id, other_file_id)

    for key in (other_key, f"files/{other_request_id}/{file_id}", f"files/{other_request_id}/made-up-file-id"):
        response = s3_post(guest.authorized(file_id), BODY, key=key)
        assert response.status_code == 403, response.text
        assert nothing_at(key)
    # The server will not sign for the other request's file either: the session names the request.
    assert guest.endpoint(other_file_id, "authorize").status_code == 404
    assert nothing_at(key_of(request_id, file_id)) and nothing_at(other_key)


def test_a_guests_policy_cannot_put_a_file_at_another_file_of_the_same_request(alice, mailoutbox):
    mine, colleague = unique_address("mine"), unique_address("colleague")
    request_id, tokens = ask(alice, mailoutbox, mine, colleague)
    guest = guest_in(mailoutbox, tokens[mine], mine)
    other = guest_in(mailoutbox, tokens[colleague], colleague)
    first_id, second_id = guest.declared(("a.pdf", len(BODY)), ("b.pdf", len(BODY)))
    (colleagues_id,) = other.declared(("c.pdf", len(BODY)))
    authorized = guest.authorized(first_id)

    for target in (second_id, colleagues_id):
        response = s3_post(authorized, BODY, key=key_of(request_id, target))
        assert response.status_code == 403, response.text
        assert nothing_at(key_of(request_id, target))
    # Nor does the server hand out a policy for the colleague's file, or let this guest verify or cancel it.
    for action in ("authorize", "done", "cancel"):
        assert guest.endpoint(colleagues_id, action).json()["error"] == "not_found"
    assert File.get(request_id, colleagues_id, consistent_read=True).state == "pending"


# --- sizes: what S3 caps, and what the server checks ----------------------------------------------------------


def test_more_bytes_than_declared_are_refused_by_s3_and_the_declared_file_still_uploads(alice, mailoutbox):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    authorized = guest.authorized(file_id)

    too_big = s3_post(authorized, BODY + b"x" * MiB)
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    assert nothing_at(key_of(request_id, file_id))
    assert guest.upload(file_id, BODY)["outcome"] == "verified"
    assert employee_download(alice, request_id, file_id) == BODY


def test_a_multipart_upload_larger_than_declared_is_refused_by_s3_and_the_declared_file_still_uploads(
    alice, mailoutbox, small_parts
):
    """Each part URL signs its part's exact length, so S3 refuses a part of any other length (the server also
    checks the parts before completing: tests/transfers/test_uploads.py)."""
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    declared = 6 * MiB
    (file_id,) = guest.declared(("scans.zip", declared))
    body = b"y" * declared
    authorized = guest.signed(file_id, guest.authorized(file_id), body)
    headers = {"x-amz-checksum-crc64nvme": authorized["crcs"]["2"]}
    too_long = requests.put(authorized["partUrls"]["2"], data=b"y" * (4 * MiB), headers=headers, timeout=60)
    assert too_long.status_code == 403 and "SignatureDoesNotMatch" in too_long.text  # part 2 is 1 MiB
    assert guest.authorized(file_id)["partsDone"] == []
    s3_put_parts(authorized, body)

    completed = guest.endpoint(
        file_id, "complete", {"uploadId": authorized["uploadId"], **checksums_of(body, real_crc=True)}
    )
    assert completed.status_code == 200 and completed.json()["outcome"] == "verified"
    assert storage.object_head(key=key_of(request_id, file_id)).size == declared


def test_a_guest_cannot_exceed_the_requests_limits(alice, mailoutbox):
    email = unique_address()
    request_id, tokens = ask(
        alice,
        mailoutbox,
        email,
        max_files=2,
        max_file_bytes=1 * MiB,
        max_total_bytes=MiB + MiB // 2,
        allowed_extensions=["pdf", "csv"],
    )
    guest = guest_in(mailoutbox, tokens[email], email)

    def refused(*files) -> str:
        response = guest.declare(*files)
        assert response.status_code == 400, response.content
        return response.json()["error"]

    assert refused(("huge.pdf", MiB + 1)) == "file_too_large"
    assert refused(("letter.docx", 10)) == "extension_not_allowed"
    assert refused(("tool.exe", 10)) == "extension_blocked"
    assert refused(("contract.pdf.exe", 10)) == "extension_blocked"
    assert refused(("a.pdf", 10), ("b.pdf", 10), ("c.pdf", 10)) == "too_many_files"
    assert refused(("a.pdf", MiB), ("b.pdf", MiB)) == "transfer_too_large"
    # Across calls (another tab, a later visit), the guest's count and total still hold.
    guest.declared(("a.pdf", MiB))
    assert refused(("b.pdf", MiB)) == "transfer_too_large"
    guest.declared(("b.csv", MiB // 4))
    assert refused(("c.pdf", 10)) == "too_many_files"

    bob = Recipient.get(request_id, _guest_id(request_id, email), consistent_read=True)
    assert (bob.files_reserved, bob.bytes_reserved) == (2, MiB + MiB // 4)  # refusals reserved nothing
    page = guest.client.get("/guest/upload/").content.decode()
    assert "0 more files" in page


def _guest_id(request_id: str, email: str) -> str:
    return next(r.recipient_id for r in Recipient.query(request_id, consistent_read=True) if r.email == email)


# --- overwriting ----------------------------------------------------------------------------------------------


def test_an_upload_over_a_verified_file_never_reaches_the_employee(alice, mailoutbox):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    key = key_of(request_id, file_id)
    authorized = guest.authorized(file_id)
    assert s3_post(authorized, BODY).status_code == 201
    assert guest.endpoint(file_id, "done").json()["outcome"] == "verified"
    verified_version = File.get(request_id, file_id, consistent_read=True).version_id
    assert verified_version

    # The server hands out no new policy for a verified file...
    again = guest.endpoint(file_id, "authorize")
    assert (again.status_code, again.json()["error"]) == (409, "state_conflict")
    # ...but the old one is valid for minutes, and S3 cannot tell: the bytes land as a new version.
    forged = BODY.replace(b"page 1", b"PAGE 9")
    assert len(forged) == len(BODY)
    overwrite = s3_post(authorized, forged)
    assert overwrite.status_code == 201, overwrite.text
    stray = next(v for v in versions_of(key) if v != verified_version)
    assert guest.endpoint(file_id, "done").json()["outcome"] == "verified"  # nothing re-verified
    assert employee_download(alice, request_id, file_id) == BODY  # downloads are pinned to the verified version

    # S3's ObjectCreated event for the stray version (at least once) removes it.
    event = {"Records": [s3_record(key, len(forged), version_id=stray)]}
    assert jobs.on_object_created(event, None) == {"records": [{"key": key, "outcome": "stray_version"}]}
    # (A repeat of this event finds the version gone. S3 answers the delete of a missing version with success;
    # LocalStack answers InvalidArgument, so the repeat is not played here.)
    assert versions_of(key) == [verified_version]
    assert employee_download(alice, request_id, file_id) == BODY
    assert storage.object_head(key=key).version_id == verified_version
    assert "file.stray_version_removed" in audited(request_id)


# --- part URLs and anonymous access: writing one part is all they do ----------------------------------------


def test_a_part_url_cannot_read_list_or_abort(alice, mailoutbox, small_parts):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    verified_id, big_id = guest.declared(("contract.pdf", len(BODY)), ("scans.zip", 6 * MiB))
    assert guest.upload(verified_id, BODY)["outcome"] == "verified"
    authorized = guest.signed(big_id, guest.authorized(big_id), bytes(6 * MiB))
    part_url = authorized["partUrls"]["1"]
    path, _, query = part_url.partition("?")
    bucket_url = path.rsplit("/files/", 1)[0]
    verified_url = f"{bucket_url}/{key_of(request_id, verified_id)}?{query}"

    for method, url in [
        ("GET", part_url),  # read the key the URL was signed for
        ("HEAD", part_url),
        ("DELETE", part_url),  # abort the upload
        ("GET", verified_url),  # read an uploaded file with the same signature
        ("PUT", verified_url),  # or write a part over it
        ("GET", f"{bucket_url}?{query}"),  # list the bucket
        ("GET", f"{bucket_url}?list-type=2&prefix=files/{request_id}/&{query}"),
        ("GET", f"{path}?uploadId={authorized['uploadId']}&{query.split('&', 2)[2]}"),  # list the parts
    ]:
        response = requests.request(method, url, data=b"z" * 1024 if method == "PUT" else None, timeout=10)
        assert response.status_code == 403, (method, url, response.status_code, response.text[:300])
        assert BODY not in response.content and b"<Contents>" not in response.content
    # The upload itself is untouched: the part URL still does the one thing it was signed for.
    crc = {"x-amz-checksum-crc64nvme": authorized["crcs"]["1"]}
    assert requests.put(part_url, data=bytes(5 * MiB), headers=crc, timeout=60).status_code == 200


def test_anonymous_reads_and_public_uploads_are_shut_by_the_buckets_configuration(alice, mailoutbox):
    """LocalStack serves anonymous GETs and listings whatever the bucket's settings (it evaluates no public
    access block, ACL or bucket policy), and it accepts POST form fields the policy does not name (such as
    `acl=public-read`), which S3 refuses. So S3 refusing these cannot be shown here; what fxfer guarantees is
    asserted instead: every public-access block on, no grant to anyone but the owner on the bucket or on an
    uploaded object, no Allow in the bucket policy, and a POST policy that pins each of its form fields to one
    value and names no other (so S3 refuses an added `acl` or a changed field)."""
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    authorized = guest.authorized(file_id)
    assert s3_post(authorized, BODY).status_code == 201
    assert guest.endpoint(file_id, "done").json()["outcome"] == "verified"

    policy = json.loads(base64.b64decode(authorized["fields"]["policy"]))
    exact = {name: value for c in policy["conditions"] if isinstance(c, dict) for name, value in c.items()}
    ranges = [c for c in policy["conditions"] if isinstance(c, list)]
    signed_fields = {k: v for k, v in authorized["fields"].items() if k not in {"policy", "x-amz-signature"}}
    assert exact == {**signed_fields, "bucket": settings.FXFER_BUCKET}  # every field pinned, no other allowed
    assert exact["key"] == key_of(request_id, file_id)
    assert ranges == [["content-length-range", len(BODY), len(BODY)]]  # no "starts-with", no other range

    s3, bucket = aws.client("s3"), settings.FXFER_BUCKET
    blocks = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert blocks == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    owner = s3.get_bucket_acl(Bucket=bucket)["Owner"]["ID"]
    for grants in (
        s3.get_bucket_acl(Bucket=bucket)["Grants"],
        s3.get_object_acl(Bucket=bucket, Key=key_of(request_id, file_id))["Grants"],
    ):
        assert [(g["Grantee"].get("ID"), g["Grantee"].get("URI")) for g in grants] == [(owner, None)]
    bucket_policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert bucket_policy == provisioning.bucket_policy(bucket=bucket, key_arn=storage.kms_key_arn())
    assert {s["Effect"] for s in bucket_policy["Statement"]} == {"Deny"}


# --- closed and expired requests ------------------------------------------------------------------------------


def _assert_shut(guest: Guest, file_ids: list[str]) -> None:
    """The link, the upload page and every upload endpoint refuse, the same 404 as an unknown link."""
    assert Client().get(f"/t/{guest.token}", follow=True).status_code == 404
    stranger = Client()
    assert stranger.post(f"{open_link(stranger, f'/t/{guest.token}')}/code").status_code == 404
    assert guest.client.get("/guest/upload/").status_code == 404
    assert guest.client.post("/guest/upload/finish", {"note": "late"}).status_code == 404
    declared = guest.declare(("late.pdf", 10))
    assert (declared.status_code, declared.json()["error"]) == (404, "not_found")
    for file_id in file_ids:
        for action in ("authorize", "parts", "complete", "done", "cancel"):
            response = guest.endpoint(file_id, action, {"uploadId": "x", "parts": {"1": ANY_CRC}})
            assert (response.status_code, response.json()["error"]) == (404, "not_found"), action


def test_a_closed_request_refuses_its_link_and_every_upload(alice, mailoutbox, small_parts):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    small_id, big_id = guest.declared(("contract.pdf", len(BODY)), ("scans.zip", 6 * MiB))
    late = b"z" * 6 * MiB
    multipart = guest.signed(big_id, guest.authorized(big_id), late)

    services.request_close(owner_id=alice.id, transfer_id=request_id)

    _assert_shut(guest, [small_id, big_id])
    # The multipart upload was aborted with the request: a part URL handed out before is dead at S3 too.
    headers = {"x-amz-checksum-crc64nvme": multipart["crcs"]["1"]}
    late_part = requests.put(multipart["partUrls"]["1"], data=late[: 5 * MiB], headers=headers, timeout=60)
    assert late_part.status_code == 404 and "NoSuchUpload" in late_part.text
    assert nothing_at(key_of(request_id, big_id))


def test_a_post_policy_handed_out_before_the_close_delivers_nothing_to_the_employee(alice, mailoutbox):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    authorized = guest.authorized(file_id)

    services.request_close(owner_id=alice.id, transfer_id=request_id)

    # S3 cannot revoke a policy, so the bytes may land; the server must not release them as received.
    assert s3_post(authorized, BODY).status_code == 201
    key = key_of(request_id, file_id)
    jobs.on_object_created({"Records": [s3_record(key, len(BODY))]}, None)
    late = File.get(request_id, file_id, consistent_read=True)
    assert (late.state, late.refused_reason) == ("refused", "request_closed")
    assert nothing_at(key)  # the refused bytes are deleted
    with pytest.raises(TransferError):
        services.received_download_url(owner_id=alice.id, transfer_id=request_id, file_id=file_id)


def test_a_request_past_its_closing_time_refuses_its_link_and_every_upload(alice, mailoutbox):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    assert guest.client.get("/guest/upload/").status_code == 200

    # Time passes (a request is open for at least an hour): its closing time is now a second ago. Nothing
    # else changes; the status stays "ready", as when the sweep has not run yet.
    Transfer(transfer_id=request_id).update(actions=[Transfer.closes_at.set(datetime.now(UTC) - timedelta(seconds=1))])

    _assert_shut(guest, [file_id])
    with pytest.raises(TransferError):
        services.guest_link_open(token=tokens[email])


# --- a request's guest downloads nothing ----------------------------------------------------------------------


def test_a_request_guest_cannot_list_or_download_anything(alice, mailoutbox):
    email = unique_address()
    request_id, tokens = ask(alice, mailoutbox, email)
    guest = guest_in(mailoutbox, tokens[email], email)
    (file_id,) = guest.declared(("contract.pdf", len(BODY)))
    assert guest.upload(file_id, BODY)["outcome"] == "verified"
    bucket_host = settings.FXFER_S3_ENDPOINT

    answers = [
        guest.client.get("/guest/files/"),  # a transfer recipient's file list
        guest.client.post(f"/guest/files/{file_id}/download"),  # their download, with the guest's own file
        guest.client.get(f"/requests/{request_id}/"),  # the employee's page of the request
        guest.client.post(f"/requests/{request_id}/files/{file_id}/download"),  # the employee's download
        guest.json(f"/transfers/{request_id}/files/{file_id}/authorize"),  # the sender's uploader endpoints
    ]
    assert [a.status_code for a in answers] == [403, 403, 302, 302, 401]
    assert all("/saml/login/" in a["Location"] for a in answers[2:4])
    for answer in answers:
        assert bucket_host not in answer.get("Location", "") and bucket_host not in answer.content.decode()
    # The upload page shows the guest's file with its checksum, and no way to download it.
    page = guest.client.get("/guest/upload/").content.decode()
    assert "contract.pdf" in page and "Received and checked" in page
    assert "/download" not in page and ">Download<" not in page and bucket_host not in page
    assert not {"request.downloaded", "download.url_issued"} & set(audited(request_id))
