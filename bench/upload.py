"""Browser upload against boto3 on the same S3 stand-in (on demand; not part of the test suite).

    python -m bench.upload [--size-mib 1024] [--small-mib 1] [--budget-seconds 600] [--floor] [--timeline]

Starts the local stand-ins (moto: DynamoDB and SES; LocalStack: S3 and KMS, enforcing CORS, POST policies and
signatures), provisions them, starts fxfer (`manage.py runserver`, local settings) on a free loopback port,
signs in through the local IdP in Chromium and sends one file of random bytes through the New transfer page:
the browser's multipart path (Uppy, part URLs signed by fxfer in batches, parts PUT straight to S3, server-side
completion and verification). It times that from pressing Send to the transfer page showing the files verified
("Sent"), then does the same with a small file (1 MiB: small files must not get slower for the big ones' sake).
Then it uploads the big file with boto3's `upload_file` (its default transfer settings) to the same LocalStack
bucket and times that. Prints the times, throughputs and the ratio browser / boto3; then how much of each was
LocalStack's CompleteMultipartUpload (it copies every part into one new file, 64 KiB at a time, in Python: seconds
for 1 GiB, on the CPU the browser and boto3 need too), and the ratios without it; then the CPU seconds each process
(Chromium, LocalStack, fxfer, this one with moto and boto3) used during each upload, against the machine's cores.

`--floor` adds what this machine allows a browser at all, in the same Chromium after the fxfer uploads: the big file's
parts PUT straight to presigned part URLs of a multipart upload (16 MiB parts, 10 requests at once, no checksum,
no call to fxfer), then CompleteMultipartUpload with boto3; once alone and once with fxfer's own checksum worker
(static/js/hash-worker.js) reading the file alongside for its SHA-256 and every part's CRC-64/NVME (the PUTs do not
wait for them), as every upload does. No upload through fxfer can be faster than the first figure on this machine;
the second is what the checksums that recipients and S3 check leave of it. Then the worker alone over the file
("sums alone": one thread reads and hashes in order, so no upload that hashes every byte ends sooner, whatever the
cores), and from these a "bound": the longest of that, floor+sums' CPU seconds shared by this machine's cores and
the raw PUTs' time, then the browser's completion. On a machine whose few cores Chromium shares with LocalStack,
the bound is above boto3's time: the SHA-256 in WebAssembly (no SHA instructions there) and Chromium moving each
byte through three processes cost CPU that boto3 does not spend.

`--timeline` prints, for each browser upload, every part PUT and call to fxfer as the page saw them, then
fxfer's side: each request's time and the AWS calls it made (botocore's: S3, DynamoDB, KMS and SES alike),
timed in the server, which logs them only then. Where a slow completion spends its time.

`--link-mbit N` runs it all over a loopback shaped to N Mbit/s (`tc` token bucket on `lo`; root only), the way an
office's uplink limits both the browser and boto3 alike: where the network, not this machine's two CPUs (shared
by Chromium, LocalStack and boto3), is the limit. It shapes the whole machine's loopback while it runs: run
nothing else meanwhile. The shaping is removed at the end, on Ctrl-C, and when the time budget runs out (after a
`kill -9`: `tc qdisc del dev lo root`).

`make bench-upload` is the full mode (1 GiB); `make bench-short` runs it with 120 MiB so CI proves it still runs.

Everything it starts is stopped at the end, on Ctrl-C, and when the time budget runs out; the file is deleted.
"""

import argparse
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig

from devtools.stack import ROOT, free_port, provision, stack, stop_on_signals

SETTINGS = "fxfer.settings.local"
BUCKET = "fxfer-local-transfers"  # fxfer.settings.local's default
MiB = 1024**2
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def write_random_file(path: Path, size: int) -> None:
    """Random bytes (nothing on the way can compress them), written a chunk at a time."""
    chunk = 16 * MiB
    with path.open("wb") as out:
        left = size
        while left:
            step = min(chunk, left)
            out.write(os.urandom(step))
            left -= step


# Who used the CPU: the processes of a run, by a piece of their command line ("" is this process: moto's server
# threads and boto3). The machine's cores are shared by all of them, so a phase's wall time is bounded below by
# their CPU seconds divided by the cores.
CPU_OWNERS = {"Chromium": "chromium", "LocalStack": "localstack.runtime.main", "fxfer": "bench.upload --serve"}


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each of CPU_OWNERS' live processes, and by this one
    ("moto+boto3"), from /proc; empty where there is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not pid.isdigit():
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        owner = "moto+boto3" if int(pid) == os.getpid() else None
        owner = owner or next((name for name, part in CPU_OWNERS.items() if part in command), None)
        if owner:
            used[owner] = used.get(owner, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {owner: after[owner] - before.get(owner, 0.0) for owner in after if after[owner] > before.get(owner, 0.0)}


AWS_LOG_ENV = "FXFER_BENCH_AWS_LOG"


def serve(port: int) -> None:
    """`manage.py runserver` (the child the bench starts), logging each request and each botocore call it makes
    to the file named by FXFER_BENCH_AWS_LOG, one JSON line each: {"t": end, "s": seconds, "what": ..., "thread"}."""
    import json

    import botocore.client
    from django.core.handlers.base import BaseHandler
    from django.core.management import execute_from_command_line

    log_path = os.environ.get(AWS_LOG_ENV)
    lock = threading.Lock()

    def timed(what: str, started: float) -> None:
        ended = time.time()
        with lock, open(log_path, "a") as log:
            entry = {"t": ended, "s": ended - started, "what": what, "thread": threading.get_ident()}
            log.write(json.dumps(entry) + "\n")

    if log_path:
        api_call, get_response = botocore.client.BaseClient._make_api_call, BaseHandler.get_response

        def logged_api_call(client, operation, params):
            started = time.time()
            try:
                return api_call(client, operation, params)
            finally:
                timed(f"aws {operation}", started)

        def logged_response(handler, request):
            started = time.time()
            try:
                return get_response(handler, request)
            finally:
                timed(f"request {request.method} {request.path}", started)

        botocore.client.BaseClient._make_api_call = logged_api_call
        BaseHandler.get_response = logged_response
    execute_from_command_line(["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"])


@contextlib.contextmanager
def fxfer_server(env: dict[str, str], port: int):
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.upload", "--serve", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        import urllib.request

        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("fxfer did not start") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)


class Timeline:
    """What the page did after Send, from Playwright's request events: every part PUT to S3 and every call to
    fxfer (authorize, parts, complete, the transfer page), as (start, end) seconds after Send."""

    def __init__(self, aws_log: Path | None = None) -> None:
        self.aws_log = aws_log
        self.started = 0.0
        self.wall = 0.0
        self.requests: dict[object, tuple[str, float]] = {}
        self.done: list[tuple[str, float, float, bool]] = []
        self.console: list[str] = []

    def watch(self, page) -> None:
        page.on("request", lambda r: self.requests.__setitem__(r, (self._name(r), time.monotonic())))
        page.on("requestfinished", lambda r: self._end(r, True))
        page.on("requestfailed", lambda r: self._end(r, False))
        page.on(
            "console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    @staticmethod
    def _name(request) -> str:
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(request.url)
        if request.method == "PUT":
            return f"PUT part {parse_qs(url.query).get('partNumber', ['?'])[0]}"
        return f"{request.method} {url.path.rstrip('/').rsplit('/', 1)[-1] or url.path}"

    def _end(self, request, ok: bool) -> None:
        name, start = self.requests.pop(request, (self._name(request), time.monotonic()))
        if start >= self.started:
            self.done.append((name, start - self.started, time.monotonic() - self.started, ok))

    def reset(self) -> None:
        self.started, self.wall = time.monotonic(), time.time()
        self.done.clear()

    def _served(self) -> list[tuple[float, float, str]]:
        """fxfer's log (see serve): (end, seconds, what, thread) of each request and AWS call since Send."""
        import json

        if not self.aws_log or not self.aws_log.exists():
            return []
        entries = [json.loads(line) for line in self.aws_log.read_text().splitlines() if line.strip()]
        return [(e["t"] - self.wall, e["s"], e["what"], e["thread"]) for e in entries if e["t"] >= self.wall]

    def summary(self) -> str:
        puts = [d for d in self.done if d[0].startswith("PUT")]
        calls = [d for d in self.done if not d[0].startswith("PUT")]
        lines = []
        if puts:
            first, last = min(d[1] for d in puts), max(d[2] for d in puts)
            durations = sorted(d[2] - d[1] for d in puts)
            lines.append(
                f"  parts: {len(puts)} PUTs from {first:.2f} s to {last:.2f} s after Send; each {durations[0]:.2f}"
                f"-{durations[-1]:.2f} s (median {durations[len(durations) // 2]:.2f} s)"
                + ("" if all(d[3] for d in puts) else f"; {sum(not d[3] for d in puts)} failed")
            )
        for name, start, end, ok in sorted(calls, key=lambda d: d[1]):
            lines.append(f"  {name:<24} {start:6.2f} -> {end:6.2f} s{'' if ok else '  FAILED'}")
        served = self._served()
        if served:
            lines.append("  fxfer's side (its clock): each request's time and the AWS calls it made, in order")
        for end, seconds, what, thread in served:
            if what.startswith("request "):
                aws = [
                    f"{w[4:]} {s:.3f}"
                    for t, s, w, th in served
                    if th == thread and w.startswith("aws ") and end - seconds <= t - s and t <= end
                ]
                path = what.split(" ", 2)[2].rstrip("/").rsplit("/", 1)[-1]
                lines.append(
                    f"  {what.split(' ')[1]} {path:<19} {end - seconds:6.2f} -> {end:6.2f} s ({seconds:.3f} s): "
                    + (", ".join(aws) or "no AWS call")
                )
        lines += [f"  console {line}" for line in self.console[-10:]]
        return "\n".join(lines)


FLOOR_PART = 16 * MiB
FLOOR_LANES = 10
# In an fxfer page (its Content-Security-Policy lets it reach S3 and start the hash worker): PUT every part, with
# FLOOR_LANES requests at once, and, when asked, run fxfer's checksum worker over the file meanwhile. With no URLs,
# the worker alone.
FLOOR_JS = """async ([urls, partSize, lanes, withSha]) => {
  const file = document.getElementById("bench-floor-file").files[0];
  const tag = document.querySelector("script[data-hash-worker]");
  let sha = null;
  if (withSha) {
    const worker = new Worker(tag.dataset.hashWorker);
    sha = new Promise((resolve, reject) => {
      worker.onmessage = (event) => {
        if (event.data.type === "done") { resolve(event.data.sha256); worker.terminate(); }
        if (event.data.type === "error") { reject(new Error(event.data.message)); }
      };
    });
    const scripts = tag.dataset.hashWasm.split(" ").map((url) => new URL(url, location.href).href);
    worker.postMessage({file: file, partSize: partSize, sha256: true, scripts: scripts});
  }
  const etags = [];
  let next = 0;
  async function lane() {
    while (next < urls.length) {
      const index = next++;
      const body = file.slice(index * partSize, (index + 1) * partSize);
      const response = await fetch(urls[index], {method: "PUT", body: body});
      if (!response.ok) { throw new Error("part " + (index + 1) + ": HTTP " + response.status); }
      etags[index] = response.headers.get("ETag");
    }
  }
  await Promise.all(Array.from({length: lanes}, lane));
  return {etags: etags, sha256: sha ? await sha : null};
}"""


def browser_floor(page, s3, path: Path, *, with_sha: bool, puts: bool = True) -> tuple[float, float, float]:
    """Seconds to PUT `path`'s parts from this page straight to S3 and complete the upload (FLOOR_JS), the seconds
    of that the completion took, and the CPU seconds every process used meanwhile. Without `puts`, the checksum
    worker alone reading the file (no upload: one thread's sequential work, the least time any upload that hashes
    every byte needs, whatever the cores)."""
    key = "bench/browser-floor"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ServerSideEncryption="aws:kms") if puts else None
    count = math.ceil(path.stat().st_size / FLOOR_PART) if puts else 0
    urls = [
        s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": BUCKET, "Key": key, "UploadId": upload["UploadId"], "PartNumber": number},
            ExpiresIn=3600,
        )
        for number in range(1, count + 1)
    ]
    page.locator("#bench-floor-file").set_input_files(str(path))
    started, cpu_before = time.monotonic(), cpu_seconds()
    result = page.evaluate(FLOOR_JS, [urls, FLOOR_PART, FLOOR_LANES, with_sha])
    completing = time.monotonic()
    if puts:
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(result["etags"], 1)]},
        )
    ended, cpu = time.monotonic(), sum(cpu_used(cpu_before, cpu_seconds()).values())
    if puts:
        s3.delete_object(Bucket=BUCKET, Key=key)
    if with_sha and len(result["sha256"] or "") != 64:
        raise SystemExit(f"the SHA-256 worker answered {result['sha256']!r}")
    return ended - started, ended - completing, cpu


def browser_upload(
    base_url: str,
    paths: list[Path],
    deadline: float,
    timeline: Timeline | None = None,
    floor_s3=None,
) -> tuple[list[float], dict[str, tuple[float, float, float]], list[dict[str, float]]]:
    """For each file, one transfer of it: seconds from pressing Send to the transfer page showing it verified, and
    the CPU seconds each process used meanwhile.
    With `floor_s3` (a boto3 S3 client), the first file's browser_floor too: alone, with the checksum worker, and
    the worker alone."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            if timeline:
                timeline.watch(page)
            page.goto(f"{base_url}/saml/login/?next=/transfers/new")
            page.wait_for_url(f"{base_url}/idp/sso/**")
            with page.expect_navigation(url=lambda url: "/idp/" not in url):
                page.locator('button[data-identity="alice"]').click()
            page.wait_for_url(f"{base_url}/transfers/new")
            times, cpus = [], []
            for path in paths:
                page.goto(f"{base_url}/transfers/new")
                # Exact labels: "Recipients" alone also matches the "Let recipients send files back" checkbox.
                page.get_by_label("Recipients", exact=True).fill("bench@partner.example")
                page.get_by_label("Subject", exact=True).fill("Upload benchmark")
                page.locator("#uploader input[type=file]").first.set_input_files(str(path))
                expect(page.get_by_text(path.name)).to_be_visible()
                started, cpu_before = time.monotonic(), cpu_seconds()
                if timeline:
                    timeline.reset()
                remaining_ms = max(1000, (deadline - time.monotonic()) * 1000)
                try:
                    # Timed to the event of the transfer's page being parsed (the page goes there once every file
                    # is verified), not by polling for its text: expect() polls up to a second apart, which made
                    # every figure a step function.
                    with page.expect_event("domcontentloaded", timeout=remaining_ms):
                        page.get_by_role("button", name="Send", exact=True).click()
                    times.append(time.monotonic() - started)
                    cpus.append(cpu_used(cpu_before, cpu_seconds()))
                    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=10_000)
                finally:
                    if timeline:
                        print(f"timeline of {path.name} (--timeline):\n{timeline.summary()}", flush=True)
            floors = {}
            if floor_s3 is not None:
                page.goto(f"{base_url}/transfers/new")
                page.evaluate(
                    "() => { const input = document.createElement('input'); input.type = 'file';"
                    " input.id = 'bench-floor-file'; input.hidden = true; document.body.append(input); }"
                )
                for name, with_sha, puts in (("plain", False, True), ("sha256", True, True), ("sums", True, False)):
                    floors[name] = browser_floor(page, floor_s3, paths[0], with_sha=with_sha, puts=puts)
            return times, floors, cpus
        finally:
            browser.close()


def s3_client(env: dict[str, str]):
    return boto3.client(
        "s3",
        endpoint_url=env["FXFER_S3_ENDPOINT"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def boto3_upload(env: dict[str, str], path: Path) -> tuple[float, float, dict[str, float]]:
    """Seconds of boto3's upload_file, of those its CompleteMultipartUpload took, and the CPU seconds each process
    used meanwhile."""
    s3 = s3_client(env)
    key = "bench/boto3-upload"
    completion = {}
    s3.meta.events.register(
        "before-call.s3.CompleteMultipartUpload", lambda **_: completion.__setitem__("start", time.monotonic())
    )
    s3.meta.events.register(
        "after-call.s3.CompleteMultipartUpload", lambda **_: completion.__setitem__("end", time.monotonic())
    )
    started, cpu_before = time.monotonic(), cpu_seconds()
    s3.upload_file(str(path), BUCKET, key, ExtraArgs={"ServerSideEncryption": "aws:kms"}, Config=TransferConfig())
    elapsed, cpu = time.monotonic() - started, cpu_used(cpu_before, cpu_seconds())
    s3.delete_object(Bucket=BUCKET, Key=key)
    return elapsed, completion.get("end", 0.0) - completion.get("start", 0.0), cpu


def fxfer_completions(aws_log: Path) -> float:
    """Seconds fxfer's server spent in CompleteMultipartUpload (serve's log): the big file's, the only multipart
    upload of the run (the small file goes in one presigned POST)."""
    import json

    if not aws_log.exists():
        return 0.0
    entries = [json.loads(line) for line in aws_log.read_text().splitlines() if line.strip()]
    return sum(e["s"] for e in entries if e["what"] == "aws CompleteMultipartUpload")


@contextlib.contextmanager
def shaped_loopback(mbit: int | None):
    """`lo` limited to `mbit` Mbit/s (a token bucket, both directions together) while the block runs; nothing
    with None."""
    if not mbit:
        yield
        return
    if os.geteuid() != 0 or not shutil.which("tc"):
        raise SystemExit("--link-mbit shapes the loopback with `tc`: it needs root and iproute2")
    # The bucket holds a few of lo's 64 KiB packets; packets wait at most 200 ms for tokens before being dropped.
    tbf = ["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", f"{mbit}mbit", "burst", "512kb"]
    subprocess.run([*tbf, "latency", "200ms"], check=True)
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024: 1 GiB)")
    parser.add_argument("--small-mib", type=int, default=1, help="the small file's size in MiB (default 1; 0: none)")
    parser.add_argument("--budget-seconds", type=int, default=600, help="stop after this long (default 600)")
    parser.add_argument(
        "--timeline", action="store_true", help="print each browser upload's part PUTs and calls to fxfer, timed"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also time raw part PUTs from the same browser, alone and with checksums"
    )
    parser.add_argument(
        "--link-mbit", type=int, metavar="N", help="shape the loopback to N Mbit/s meanwhile (root; see above)"
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the fxfer child
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    stop_on_signals()
    # The budget ends the run the same way Ctrl-C does, so every `finally` below stops what it started.
    timer = threading.Timer(args.budget_seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    deadline = time.monotonic() + args.budget_seconds
    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="fxfer-bench-upload-"))
    path = workdir / "bench-upload.bin"
    small = workdir / "bench-upload-small.bin"
    aws_log = workdir / "fxfer-aws-calls.jsonl"
    try:
        print(f"writing {args.size_mib} MiB of random bytes ...", flush=True)
        write_random_file(path, size)
        if args.small_mib:
            write_random_file(small, args.small_mib * MiB)
        print("starting the stand-ins (moto, LocalStack) and fxfer ...", flush=True)
        with shaped_loopback(args.link_mbit), stack() as aws_env:
            port = free_port()
            env = {
                **os.environ,
                **aws_env,
                "DJANGO_SETTINGS_MODULE": SETTINGS,
                "FXFER_BASE_URL": f"http://127.0.0.1:{port}",
                # Timed: the upload from Send to "Sent". Not the release gates of issue 16 (the sender ticking
                # recipients in the mis-send dialog, the minutes the mails wait after Send, a supervisor's
                # approval, the malware scan: GuardDuty's own time in production, a local stand-in that reads
                # the whole object back here): off.
                "FXFER_CONFIRM_RECIPIENTS": "off",
                "FXFER_SEND_HOLD_SECONDS": "0",
                "FXFER_APPROVAL": "off",
                "FXFER_SCANNER": "off",
            }
            env[AWS_LOG_ENV] = str(aws_log)  # what fxfer's completion took, and --timeline's calls
            provision(env, SETTINGS)
            with fxfer_server(env, port) as base_url:
                print("browser: Chromium, Uppy multipart through fxfer ...", flush=True)
                (browser_seconds, *small_seconds), floors, (browser_cpu, *_) = browser_upload(
                    base_url,
                    [path, small] if args.small_mib else [path],
                    deadline,
                    Timeline(aws_log) if args.timeline else None,
                    floor_s3=s3_client(aws_env) if args.floor else None,
                )
            browser_completion = fxfer_completions(aws_log)
            print("boto3: upload_file ...", flush=True)
            boto3_seconds, boto3_completion, boto3_cpu = boto3_upload(aws_env, path)
    except KeyboardInterrupt:
        print("stopped (Ctrl-C or the time budget ran out); everything started was stopped", file=sys.stderr)
        return 1
    finally:
        timer.cancel()
        path.unlink(missing_ok=True)
        small.unlink(missing_ok=True)
        aws_log.unlink(missing_ok=True)
        workdir.rmdir()

    def line(name: str, seconds: float, mib: float = size / MiB) -> str:
        return f"{name:<8} {seconds:7.1f} s  {mib / seconds:7.1f} MiB/s"

    print()
    link = f", over a loopback shaped to {args.link_mbit} Mbit/s" if args.link_mbit else ""
    print(f"file      {args.size_mib} MiB, random bytes, to LocalStack S3 on this machine{link}")
    print(line("browser", browser_seconds) + "  (Send to verified: parts, completion, verification)")
    print(line("boto3", boto3_seconds) + "  (upload_file, default TransferConfig)")
    print(f"ratio     {browser_seconds / boto3_seconds:.2f} (browser / boto3)")
    if floors:
        how = f"{FLOOR_PART // MiB} MiB parts, {FLOOR_LANES} at once, presigned, then completion; no call to fxfer"
        print(line("floor", floors["plain"][0]) + f"  (raw part PUTs from the same Chromium: {how})")
        print(
            line("floor+sums", floors["sha256"][0])
            + "  (the same, fxfer's checksum worker reading the file alongside: SHA-256, every part's CRC-64)"
        )
        print(
            f"          floor / boto3 {floors['plain'][0] / boto3_seconds:.2f}, floor+sums / boto3 "
            f"{floors['sha256'][0] / boto3_seconds:.2f}"
        )
        # What no browser upload that hashes every byte can beat here, before its completion: the worker's one
        # thread reading and hashing the file in order (whatever the cores); the CPU seconds floor+sums used
        # before its completion, shared by this machine's cores; and the raw PUTs alone (where the link is the
        # limit). Then the browser's own completion, as LocalStack took it in this run (its time varies by
        # seconds from run to run with the disk).
        sums_alone = floors["sums"][0]
        _, completion, cpu = floors["sha256"]
        cores = os.cpu_count() or 1
        shared = (cpu - completion) / cores  # LocalStack's completion keeps one core busy
        raw_puts = floors["plain"][0] - floors["plain"][1]
        bound = max(sums_alone, shared, raw_puts) + browser_completion
        print(
            line("sums alone", sums_alone)
            + "  (fxfer's checksum worker alone over the file: one thread, no upload; a bound whatever the cores)"
        )
        print(
            f"bound     {bound:.1f} s = {bound / boto3_seconds:.2f} x boto3 (browser {browser_seconds / bound:.2f} x"
            f" it): the longest of sums alone, floor+sums' {cpu - completion:.1f} CPU seconds before its completion"
            f" on {cores} CPUs ({shared:.1f} s) and the raw PUTs ({raw_puts:.1f} s), then the browser's completion: no"
            " upload from this browser hashing every byte ends sooner here"
        )
    # LocalStack completes a multipart upload by copying every part into one new file, 64 KiB at a time, in
    # Python: seconds for 1 GiB, on the CPU the browser and boto3 need too. S3's time is its own, not ours.
    completions = f"browser {browser_completion:.1f} s, boto3 {boto3_completion:.1f} s"
    if floors:
        completions += f", floor {floors['plain'][1]:.1f} s, floor+sums {floors['sha256'][1]:.1f} s"
    print(f"of which  LocalStack's completion (it copies the parts into one new file): {completions}")
    uploads = browser_seconds - browser_completion, boto3_seconds - boto3_completion
    print(
        f"without   browser {uploads[0]:.1f} s, boto3 {uploads[1]:.1f} s: ratio {uploads[0] / uploads[1]:.2f}"
        + (
            f"; floor / boto3 {(floors['plain'][0] - floors['plain'][1]) / uploads[1]:.2f}, floor+sums / boto3 "
            f"{(floors['sha256'][0] - floors['sha256'][1]) / uploads[1]:.2f}"
            if floors
            else ""
        )
    )
    # Where the time went: every process's CPU seconds meanwhile, against the machine's cores.
    for name, seconds, cpu in (("browser", browser_seconds, browser_cpu), ("boto3", boto3_seconds, boto3_cpu)):
        if cpu:
            owners = ", ".join(f"{owner} {used:.1f}" for owner, used in sorted(cpu.items(), key=lambda o: -o[1]))
            print(
                f"cpu       {name}: {sum(cpu.values()):.1f} CPU seconds in {seconds:.1f} s on {os.cpu_count()} CPUs"
                f" ({owners})"
            )
    if small_seconds:
        print(f"small     {args.small_mib} MiB through the browser: {small_seconds[0]:.2f} s (Send to verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
