"""AWS clients on a warm process (`python -m bench.clients`, issue 15): what each request costs once the process
is warm, and whether memory stays flat.

    python -m bench.clients [--opens 300] [--walks 60] [--recipients 20] [--short]

One process, as a warm Lambda container: Django (fxfer.settings.test) driven through its test client, AWS on
in-process moto, provisioned as `manage.py provision` does, mail through the configured EMAIL_BACKEND to moto's
SES. After a warm-up it times, each on its own:

- link opens: a guest's mailed link and the page it leads to (GET /t/<token>, GET /guest/link/<id>);
- guest walks: a new guest each time opens the link, gets a code by mail, enters it and downloads (a read, a
  conditional write, a transaction, a mail, a presigned URL);
- a release to N recipients: the sender's last upload verified, the transfer released, one mail each.

For each it prints p50 and p95 latency and the CPU ms of one open, walk (six requests) or release, the botocore
clients built while it ran (any session's: boto3, PynamoDB, django-ses), sleeps asked for, gen-2 garbage
collections with their longest pause, and the process's RSS before and after. moto answers in-process, so
latencies are fxfer's own cost plus moto's, not AWS's round trips.
"""

import argparse
import email
import gc
import os
import re
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

LINK = re.compile(r"/t/([A-Za-z0-9_-]{43})")
CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Sender:
    id: str = "u-bench"
    email: str = "bench@corp.example"
    display_name: str = "Bench Sender"


SENDER = Sender()


def _environment() -> None:
    """Fake credentials and the test settings before anything builds a client; never real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "AWS_RETRY_MODE": "standard",
        "DJANGO_SETTINGS_MODULE": "fxfer.settings.test",
    }.items():
        os.environ[name] = value
    for name in [n for n in os.environ if n.startswith("FXFER_") and n.endswith("_ENDPOINT")]:
        del os.environ[name]  # in-process moto, whatever the shell points at


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    clients: int = 0
    sleeps: int = 0
    gen2: int = 0
    gen2_longest: float = 0.0
    rss_before: float = 0.0
    rss_after: float = 0.0

    def line(self) -> str:
        n = len(self.latencies)
        ms = sorted(x * 1000 for x in self.latencies)
        p95 = ms[min(n - 1, max(0, round(0.95 * n) - 1))]
        return (
            f"{self.name:<22} n={n:<4} p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  "
            f"CPU {self.cpu_seconds * 1000 / n:6.1f} ms each  clients built {self.clients:<4} sleeps {self.sleeps:<3} "
            f"gen-2 GCs {self.gen2} (longest {self.gen2_longest * 1000:.0f} ms)  "
            f"RSS {self.rss_before:.0f} -> {self.rss_after:.0f} MiB"
        )


class Watch:
    """Counts client builds, sleeps and gen-2 collections for the whole run (patched once, read per phase)."""

    def __init__(self) -> None:
        import botocore.session

        self.clients = 0
        self.sleeps = 0
        self.gen2: list[float] = []
        self._gc_started = 0.0
        create_client = botocore.session.Session.create_client

        def counting(session, *args, **kwargs):
            self.clients += 1
            return create_client(session, *args, **kwargs)

        botocore.session.Session.create_client = counting
        real_sleep = time.sleep

        def counted_sleep(seconds):
            self.sleeps += 1
            real_sleep(seconds)

        time.sleep = counted_sleep
        try:
            import django_ses

            django_ses.sleep = counted_sleep  # django-ses imported `sleep` under its own name
        except ImportError:
            pass
        gc.callbacks.append(self._gc)

    def _gc(self, phase, info):
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gen2.append(time.perf_counter() - self._gc_started)

    @contextmanager
    def phase(self, run: Run):
        clients, sleeps, gen2 = self.clients, self.sleeps, len(self.gen2)
        run.rss_before = _rss_mib()
        yield
        run.rss_after = _rss_mib()
        run.clients, run.sleeps = self.clients - clients, self.sleeps - sleeps
        pauses = self.gen2[gen2:]
        run.gen2, run.gen2_longest = len(pauses), max(pauses, default=0.0)


def _quiet_logs() -> None:
    """Log lines are still formatted (part of a request's cost), into /dev/null instead of the report."""
    import logging

    sink = open(os.devnull, "w")  # for the life of the process
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)


def _timed(run: Run, step) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    step()
    run.latencies.append(time.perf_counter() - wall)
    run.cpu_seconds += time.process_time() - cpu


def _mail_text(raw: str) -> str:
    message = email.message_from_string(raw)
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(texts)


def moto_ses_mails() -> list[tuple[list[str], str]]:
    """(destinations, raw message) of every mail in-process moto's SES accepted."""
    from django.conf import settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    sent = ses_backends[DEFAULT_ACCOUNT_ID][settings.AWS_SES_REGION_NAME].sent_messages
    return [(m.destinations, m.raw_data) for m in sent]


def allow_browser_uploads() -> None:
    """moto evaluates bucket policies without their conditions (each conditional Deny would deny all): off."""
    from django.conf import settings

    from fxfer import aws

    aws.client("s3").delete_bucket_policy(Bucket=settings.FXFER_BUCKET)


class Bench:
    """Transfers made as a sender's browser makes them, and the links and codes mailed for them (`mails`: where
    the mails are read, by default in-process moto's SES)."""

    def __init__(self, *, sender: Sender = SENDER, mails=moto_ses_mails) -> None:
        from django.conf import settings

        self.settings = settings
        self.sender = sender
        self.mails = mails
        self.now = datetime.now(UTC)

    def mails_to(self, address: str) -> list[str]:
        return [_mail_text(raw) for destinations, raw in self.mails() if address in destinations]

    def transfer(self, recipients: list[str], *, release: bool = True):
        """A transfer of one small file to `recipients`, created and uploaded as a browser does; released
        (verified, one mail each) unless `release` is False. Returns (transfer id, file id, done)."""
        from fxfer import aws
        from transfers import services, storage
        from transfers.policy import FileDeclared
        from transfers.services import missend

        body = b"figures for the bench\n"
        created = services.transfer_create(
            sender=self.sender,
            recipients=recipients,
            confirmed_recipients=missend.needs_confirming(recipients),  # each ticked, as in the browser's dialog
            files=[FileDeclared(name="figures.txt", size=len(body), content_type="text/plain")],
            subject="Figures",
            message="Here they are.",
            now=self.now,
            download_limit=100,
        )
        file = created.files[0]
        owner_id = self.sender.id
        services.upload_authorize(owner_id=owner_id, transfer_id=created.transfer_id, file_id=file.file_id)
        aws.client("s3").put_object(
            Bucket=self.settings.FXFER_BUCKET,
            Key=file.key,
            Body=body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=storage.kms_key_arn(),
        )

        def done():
            verified = services.upload_done(owner_id=owner_id, transfer_id=created.transfer_id, file_id=file.file_id)
            assert verified.released, verified

        if release:
            done()
        return created.transfer_id, file.file_id, done

    def token(self, address: str) -> str:
        for text in reversed(self.mails_to(address)):
            found = LINK.search(text)
            if found:
                return found[1]
        raise SystemExit(f"no link mail to {address}")

    def code(self, address: str) -> str:
        for text in reversed(self.mails_to(address)):
            found = CODE.search(text)
            if found:
                return found[1]
        raise SystemExit(f"no code mail to {address}")


def _open(client_class, token: str) -> None:
    guest = client_class()
    opened = guest.get(f"/t/{token}")
    assert opened.status_code == 303, opened.status_code
    page = guest.get(opened["Location"])
    assert page.status_code == 200, page.status_code


def _walk(client_class, bench: Bench, address: str, file_id: str) -> None:
    guest = client_class()
    page = guest.get(f"/t/{bench.token(address)}")["Location"]
    assert guest.get(page).status_code == 200
    sent = guest.post(f"{page}/code")
    assert sent.status_code == 303, sent.status_code
    granted = guest.post(sent["Location"], {"code": bench.code(address)})
    assert granted.status_code == 303 and granted["Location"] == "/guest/files/", granted.status_code
    assert guest.get("/guest/files/").status_code == 200
    download = guest.post(f"/guest/files/{file_id}/download")
    assert download.status_code == 303, download.status_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--opens", type=int, default=300, help="link opens to time (default 300)")
    parser.add_argument("--walks", type=int, default=60, help="guest walks to time, one new guest each (60)")
    parser.add_argument("--recipients", type=int, default=20, help="recipients of the timed release (20)")
    parser.add_argument("--releases", type=int, default=5, help="releases to time (default 5)")
    parser.add_argument(
        "--short",
        action="store_true",
        help="CI: 20 opens, 4 walks, one release to 5; fails when a warm request built a client or slept",
    )
    args = parser.parse_args(argv)
    if args.short:
        args.opens, args.walks, args.recipients, args.releases = 20, 4, 5, 1

    _environment()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from moto import mock_aws  # before any client is built: moto answers from botocore's own hooks

    with mock_aws():
        import django

        django.setup()
        _quiet_logs()
        from django.test import Client

        from devtools.moto_atomic import patch_moto_dynamodb
        from fxfer.provisioning import provision

        patch_moto_dynamodb()
        list(provision())
        from django.conf import settings

        allow_browser_uploads()
        settings.FXFER_LINK_LOOKUPS_PER_IP = 10**9  # every guest here comes from the test client's address
        settings.FXFER_MAX_RECIPIENTS = max(settings.FXFER_MAX_RECIPIENTS, args.recipients, 20)

        watch = Watch()
        bench = Bench()
        print(
            f"EMAIL_BACKEND {settings.EMAIL_BACKEND}; AWS_SES_AUTO_THROTTLE "
            f"{getattr(settings, 'AWS_SES_AUTO_THROTTLE', '(unset: 0.5)')}"
        )
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        guests = [f"guest{n}@partner.example" for n in range(args.walks + 1)]
        opener = "opener@partner.example"
        bench.transfer([opener])
        walk_files = {}
        for start in range(0, len(guests), 20):
            batch = guests[start : start + 20]
            _, walk_file, _ = bench.transfer(batch)
            walk_files.update(dict.fromkeys(batch, walk_file))
        token = bench.token(opener)

        # Warm-up: the first request of each kind builds what the process keeps.
        _open(Client, token)
        _walk(Client, bench, guests[0], walk_files[guests[0]])
        gc.collect()

        runs = []
        opens = Run("link opens")
        with watch.phase(opens):
            for _ in range(args.opens):
                _timed(opens, lambda: _open(Client, token))
        runs.append(opens)

        walks = Run("guest walks")
        with watch.phase(walks):
            for address in guests[1:]:
                _timed(walks, lambda address=address: _walk(Client, bench, address, walk_files[address]))
        runs.append(walks)

        releases = Run(f"release to {args.recipients}")
        pending = [
            bench.transfer([f"r{n}-{i}@partner.example" for i in range(args.recipients)], release=False)[2]
            for n in range(args.releases)
        ]
        with watch.phase(releases):
            for done in pending:
                _timed(releases, done)
        runs.append(releases)

        for run in runs:
            print(run.line())
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        failed = [r.name for r in runs if not r.latencies]
        if failed:
            print(f"nothing timed: {', '.join(failed)}")
            return 1
        wasteful = [r.name for r in runs if r.clients or r.sleeps]
        if wasteful and args.short:  # CI: a warm request builds no client and never sleeps
            print(f"a warm process built clients or slept in: {', '.join(wasteful)}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
