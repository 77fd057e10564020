"""Per-page latency and CPU on a warm Lambda-like process: the built package through the function's handler
(fxfer.entry around Zappa's) (issue 15 item 9; `make bench-pages`).

    python -m bench.pages [--requests 30] [--short]

The package (dist/fxfer-dev.zip, `make package`) is unzipped and run the way Lambda runs it (devtools/lambda_local:
a fresh Python 3.13 with only the package on sys.path, production settings, secrets from the stage's parameters)
against a moto server this script starts, provisions and stops, in a thread of this process. This process makes
the data as fxfer's own services make it (bench/clients' set-up, Django on the same production settings and the
same moto server): a sender and a compliance officer signed in (a session as the SAML back-end makes it, its
cookie passed in the events), transfers released with their mails, guests who opened their links and asked for
codes. Then ONE package process is fed API Gateway events: one of each page to warm it up, then each page's
requests in turn, round after round, and each invocation's wall and CPU time are taken inside it:

- guest link open: GET /t/<token> and the page it leads to (two invocations);
- guest download, code entered: POST of the one-time code (a new guest each time);
- guest download, download URL: POST .../download (one download used, a presigned URL);
- release to 20 recipients ("done"): the sender's upload finished, the transfer released, 20 link mails sent;
- My transfers with 50 transfers;
- the compliance dashboard (the chainer links today's events once a minute meanwhile, as the minute job does);
- the compliance admin's "all transfers" over a year.

"done" releases and mails in the request, as the issue measured it: the release gate's malware scan and mis-send
hold are off here and in the package process (production waits for GuardDuty's verdict and the hold, and another
invocation releases). Prints the issue's table rows with the figures now, the load average before and after, and
the command. moto answers in a thread of this process, so a latency is fxfer's own cost plus moto's, not AWS's
round trips (moto reads a whole table for a Query on an index, so list pages slow down as the run adds items).
--short (CI) times 3 rounds and fails when any request answers other than as a browser would expect.
"""

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from devtools import lambda_local, package

UA = "fxfer-bench-pages/1.0"
TIME_BUDGET_SECONDS = 900
LIST_TRANSFERS = 50
RECIPIENTS = 20
# "done" releases the transfer and mails its links in the request, as the issue measured it: here and in the package
# process, no release gate waits (production waits for GuardDuty's scan result and FXFER_SEND_HOLD_SECONDS, then
# another invocation releases).
RELEASED_AT_ONCE = {"FXFER_SEND_HOLD_SECONDS": "0", "FXFER_SCANNER": "off"}
# Each guest comes from an address of its own (documentation ranges): the per-IP link look-up limit is a minute's.
ADDRESSES = [f"{net}.{host}" for net in ("192.0.2", "198.51.100", "203.0.113") for host in range(1, 255)]


@dataclass
class Page:
    """One row of the table: what it is, the issue's goal, and its samples (each one request or a few)."""

    name: str
    goal: str
    expect: tuple[int, ...]  # the status codes of a sample's invocations, in order
    says: str = ""  # what the last answer's body holds
    samples: list[list[dict]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    def row(self) -> str:
        ms = sorted(s * 1000 for s in self.seconds)
        p95 = ms[min(len(ms) - 1, max(0, round(0.95 * len(ms)) - 1))]
        cpu = statistics.median(self.cpu_seconds) * 1000
        now = f"p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, {cpu:.0f} ms CPU (n={len(ms)})"
        return f"| {self.name} | {now} | {self.goal} |"


class Events:
    """API Gateway events as a browser's requests make them: cookies, and for a POST its CSRF cookie and token
    (a browser has them from the page before) and its Origin."""

    def __init__(self) -> None:
        from django.conf import settings
        from django.middleware.csrf import CSRF_ALLOWED_CHARS
        from django.utils.crypto import get_random_string

        self.settings = settings
        self.csrf = get_random_string(32, allowed_chars=CSRF_ALLOWED_CHARS)
        self._addresses = itertools.cycle(ADDRESSES)

    def address(self) -> str:
        return next(self._addresses)

    def get(self, url: str, *, cookies: dict[str, str] | None = None, ip: str | None = None) -> dict:
        return self._event("GET", url, cookies=cookies or {}, ip=ip)

    def post(self, url: str, *, cookies: dict[str, str], form: dict | None = None, ip: str | None = None) -> dict:
        headers = {"Origin": f"https://{lambda_local.API_HOST}", "X-CSRFToken": self.csrf}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        cookies = {**cookies, self.settings.CSRF_COOKIE_NAME: self.csrf}
        event = self._event("POST", url, cookies=cookies, ip=ip, headers=headers)
        event["body"] = urlencode(form) if form is not None else ""
        return event

    def _event(self, method: str, url: str, *, cookies: dict, ip: str | None, headers: dict | None = None) -> dict:
        ip = ip or self.address()
        parts = urlsplit(url)
        headers = {"User-Agent": UA, "X-Forwarded-For": ip, **(headers or {})}
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        event = lambda_local.api_gateway_event(parts.path, method=method, headers=headers)
        event["requestContext"]["identity"]["sourceIp"] = ip
        if parts.query:
            query = dict(parse_qsl(parts.query))
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()}
        return event


def _driver_environment(stand_in, package_dir: Path) -> None:
    """This process's Django on the package's production settings and the same moto server (never real AWS)."""
    lambda_env = stand_in.lambda_env(package_dir)
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT", "PATH", "TZ"):
        lambda_env.pop(name, None)  # this process is not the function
    shell = package.clean_environ()  # nothing of the shell's AWS or Django set-up
    os.environ.clear()
    os.environ.update(
        {
            **shell,
            **lambda_env,
            **getattr(stand_in, "remote_env", {}),  # the secrets, where a stand-in keeps them in a file
            **package.stage_settings()["environment_variables"],
            "DJANGO_SETTINGS_MODULE": "fxfer.settings.production",
            **RELEASED_AT_ONCE,
        }
    )


def _verify_sender() -> None:
    """The sender verified on the stand-in (provision under production settings leaves that to the operator's DNS
    records), so SES accepts the mails."""
    from django.conf import settings

    from fxfer import aws

    aws.client("ses").verify_email_identity(EmailAddress=settings.DEFAULT_FROM_EMAIL)


def _client(ip: str):
    from django.test import Client

    return Client(HTTP_HOST=lambda_local.API_HOST, HTTP_X_FORWARDED_PROTO="https", HTTP_USER_AGENT=UA, REMOTE_ADDR=ip)


def _signed_in(record) -> str:
    """A session for `record` as the SAML back-end's sign-in makes it; its cookie's value."""
    from django.conf import settings

    from accounts.selectors import user_from_record

    client = _client(ADDRESSES[-1])
    client.force_login(user_from_record(record), backend="accounts.backends.SamlUserBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _link_cookie(bench, address: str, ip: str) -> tuple[str, dict[str, str], object]:
    """Open `address`'s mailed link in a browser: (the link page's path, its cookies, the browser)."""
    browser = _client(ip)
    opened = browser.get(f"/t/{bench.token(address)}")
    assert opened.status_code == 303, opened.status_code
    return opened["Location"], {name: morsel.value for name, morsel in browser.cookies.items()}, browser


def _pages(bench, events: Events, *, rounds: int, sender_cookie: str, officer_cookie: str) -> list["Page"]:
    """Every page's samples: one to warm up and `rounds` to time (one-shot requests get a guest or transfer each)."""
    from datetime import UTC, datetime

    from django.conf import settings

    from reports.aggregation import today_figures
    from reports.chain import audit_chain_link
    from reports.selectors import today

    count = rounds + 1
    sender = {settings.SESSION_COOKIE_NAME: sender_cookie}
    officer = {settings.SESSION_COOKIE_NAME: officer_cookie}

    opener = "opener@partner.example"
    bench.transfer([opener])
    link_page, link_cookies, _ = _link_cookie(bench, opener, events.address())
    opens = Page("guest link open, warm Lambda-like process", "p50 ≤ 40 ms, p95 ≤ 60 ms", (303, 200))
    token = bench.token(opener)
    for _ in range(count):
        ip = events.address()
        opens.samples.append([events.get(f"/t/{token}", ip=ip), events.get(link_page, cookies=link_cookies, ip=ip)])

    guests = [f"guest{n}@partner.example" for n in range(count)]
    downloaders = [f"downloader{n}@partner.example" for n in range(count // 50 + 1)]
    files = {}
    everyone = guests + downloaders
    for start in range(0, len(everyone), RECIPIENTS):
        batch = everyone[start : start + RECIPIENTS]
        _, file_id, _ = bench.transfer(batch)
        files.update(dict.fromkeys(batch, file_id))
    codes = Page("guest download: code entered", "p50 ≤ 100 ms, p95 ≤ 150 ms; no sleep in a request", (303,))
    for address in guests:
        ip = events.address()
        page, cookies, browser = _link_cookie(bench, address, ip)
        assert browser.post(f"{page}/code").status_code == 303
        form = {"code": bench.code(address)}
        codes.samples.append([events.post(f"{page}/verify", cookies=cookies, form=form, ip=ip)])
    downloads = Page("guest download: download URL", "p50 ≤ 100 ms, p95 ≤ 150 ms; no sleep in a request", (303,))
    for n in range(count):
        address = downloaders[n // 50]
        if n % 50 == 0:  # a guest with a session (at most 50 downloads each: the transfer allows 100)
            ip = events.address()
            page, _, browser = _link_cookie(bench, address, ip)
            assert browser.post(f"{page}/code").status_code == 303
            assert browser.post(f"{page}/verify", {"code": bench.code(address)}).status_code == 303
            session = {settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value}
        url = f"/guest/files/{files[address]}/download"
        downloads.samples.append([events.post(url, cookies=session, ip=ip)])

    releases = Page(f'release to {RECIPIENTS} recipients ("done")', "≤ 1 s", (200,), says='"released": true')
    for n in range(count):
        transfer_id, file_id, _ = bench.transfer(
            [f"r{n}-{i}@partner.example" for i in range(RECIPIENTS)], release=False
        )
        releases.samples.append([events.post(f"/transfers/{transfer_id}/files/{file_id}/done", cookies=sender)])

    made = 1 + len(range(0, len(everyone), RECIPIENTS)) + count
    for n in range(made, LIST_TRANSFERS):
        bench.transfer([f"list{n}@partner.example"])
    listing = Page(f"My transfers, {max(made, LIST_TRANSFERS)} transfers", "≤ 4 calls", (200,))
    listing.samples = [[events.get("/transfers/", cookies=sender)] for _ in range(count)]

    audit_chain_link(now=datetime.now(UTC))  # today's events linked, as the minute job leaves them
    events_today = today_figures()["events"]
    dashboard = Page(
        f"compliance dashboard ({events_today} events today)", "reads today's running totals, O(1) per view", (200,)
    )
    dashboard.samples = [[events.get("/admin/", cookies=officer)] for _ in range(count)]

    last = today()
    year = f"/admin/transfers/?first_day={(last - timedelta(days=364)).isoformat()}&last_day={last.isoformat()}"
    ranged = Page('admin "all transfers" over a date range (a year)', "≤ 100 ms for a year", (200,))
    ranged.samples = [[events.get(year, cookies=officer)] for _ in range(count)]
    return [opens, codes, downloads, releases, listing, dashboard, ranged]


def _run(package_dir: Path, pages: list[Page], env: dict[str, str], *, timeout: float) -> list[str]:
    """One package process: a sample of each page to warm up, then the rest round by round. Problems found."""
    order = [(page, 0) for page in pages]
    rounds = len(pages[0].samples)
    order += [(page, n) for n in range(1, rounds) for page in pages]
    events = [event for page, n in order for event in page.samples[n]]
    done = lambda_local.invoke(package_dir, events, env=env, timeout=timeout)
    problems, at = [], 0
    for page, n in order:
        answers = done.invocations[at : at + len(page.samples[n])]
        at += len(page.samples[n])
        statuses = tuple(a.get("response", {}).get("statusCode") for a in answers)
        said = str(answers[-1].get("response", {}).get("body", "")) if answers else ""
        if statuses != page.expect or page.says not in said:
            errors = [a.get("error") or str(a.get("response", {}).get("body", ""))[:300] for a in answers]
            problems.append(f"{page.name}: {statuses}, expected {page.expect}: {errors}")
        elif n:
            page.seconds.append(sum(a["seconds"] for a in answers))
            page.cpu_seconds.append(sum(a["cpu_seconds"] for a in answers))
    if problems:
        problems.append(done.log[-3000:])
    return problems


@contextlib.contextmanager
def _minute_job(every: float = 60.0):
    """The chainer once a minute while the package runs, as the minute job keeps the chain in production (the
    dashboard reads the events not linked yet: without it they would pile up for the whole run)."""
    from reports.chain import audit_chain_link

    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            audit_chain_link()

    thread = threading.Thread(target=run, name="minute-job", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30, help="timed requests of each page (default 30)")
    parser.add_argument("--short", action="store_true", help="CI: 3 of each; fails on any unexpected answer")
    args = parser.parse_args(argv)
    rounds = 3 if args.short else max(1, args.requests)
    command = "python -m bench.pages" + (" --short" if args.short else f" --requests {rounds}")
    started = time.monotonic()
    load_before = _load()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory(prefix="fxfer-bench-pages-") as scratch, lambda_local.stand_ins() as stand_in:
        package_dir = lambda_local.unzip_package(Path(scratch) / "package")
        _driver_environment(stand_in, package_dir)
        import django

        django.setup()
        from bench.clients import Bench, Sender, _quiet_logs, allow_browser_uploads, moto_ses_mails
        from tests.reports.conftest import make_user

        _quiet_logs()
        allow_browser_uploads()
        _verify_sender()
        person = make_user("bench-sender@corp.example", roles=["employee"], department="Sales")
        officer = make_user("bench-officer@corp.example", roles=["compliance"], department="Compliance")
        bench = Bench(
            sender=Sender(id=person.user_id, email=person.email, display_name=person.display_name),
            mails=moto_ses_mails,
        )
        events = Events()
        pages = _pages(
            bench, events, rounds=rounds, sender_cookie=_signed_in(person), officer_cookie=_signed_in(officer)
        )
        remaining = TIME_BUDGET_SECONDS - (time.monotonic() - started)
        env = stand_in.lambda_env(package_dir) | RELEASED_AT_ONCE
        with _minute_job():
            problems = _run(package_dir, pages, env, timeout=max(60.0, remaining))

    if problems:
        print("\n".join(problems))
        return 1
    print(f"Per page, warm package process through the function's handler ({command}; load {load_before} before)")
    print("| what | now | goal |\n| --- | --- | --- |")
    for page in pages:
        print(page.row())
    print(f"load average {_load()} after; {time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
