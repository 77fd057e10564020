"""In Chromium: the checksum worker (static/js/hash-worker.js) that the New transfer page runs, given files of awkward
sizes. Every part's CRC-64/NVME, the whole file's (the parts' CRCs combined, not a second pass over the bytes) and
the SHA-256, all from one read, must be exactly what a slow Python reference computes over the same bytes: S3
refuses a part or a completion whose CRC is off, and recipients compare the SHA-256 with `sha256sum`. And on the New
transfer page: a file sent in parts is read once for all of them, and twice only when the server plans other parts
than the page did."""

import base64
import hashlib
import os

import pytest
from playwright.sync_api import expect

from tests.conftest import sign_in_as
from tests.transfers.conftest import crc64nvme

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MiB = 1024**2

# (file size, part size): one byte; exactly one part; one byte past a part; parts smaller than the browser's read
# pieces (so one piece spans many parts); a last part of one byte; a part size that is not a power of two; parts of
# S3's 5 MiB minimum with a short last one.
CASES = [
    (1, 1000),
    (1000, 1000),
    (1001, 1000),
    (200_003, 997),
    (3 * 65_536 + 1, 65_536),
    (1_000_000, 65_543),
    (6 * 1024**2 + 12_345, 5 * 1024**2),
]

_RUN_WORKER = """
async ([workerUrl, scripts, data, partSize]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const run = (size, sha256) => new Promise((resolve, reject) => {
    const worker = new Worker(workerUrl);
    const parts = {};
    worker.onmessage = (event) => {
      const message = event.data;
      if (message.type === "part") { parts[message.partNumber] = message.crc64nvme; return; }
      worker.terminate();
      message.type === "done" ? resolve({ ...message, parts }) : reject(new Error(message.message));
    };
    worker.postMessage({ file: new Blob([bytes]), partSize: size, sha256, scripts });
  });
  return { both: await run(partSize, true), crcOnly: await run(partSize, false), shaOnly: await run(0, true) };
}
"""


@pytest.fixture
def uploader(page, site, sending):
    """The New transfer page's worker and hash-wasm script URLs, as the page names them."""
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    script = page.locator("script[data-hash-worker]")
    return page, script.get_attribute("data-hash-worker"), script.get_attribute("data-hash-wasm").split()


@pytest.mark.parametrize(("size", "part_size"), CASES)
def test_one_read_gives_exactly_the_references_for_every_part_the_whole_file_and_its_sha256(uploader, size, part_size):
    page, worker_url, scripts = uploader
    data = os.urandom(size)
    result = page.evaluate(_RUN_WORKER, [worker_url, scripts, base64.b64encode(data).decode(), part_size])
    expected_parts = {
        str(number): crc64nvme(data[(number - 1) * part_size : number * part_size])
        for number in range(1, -(-size // part_size) + 1)
    }
    sha256 = hashlib.sha256(data).hexdigest()
    # The page's one worker per file: the parts' CRCs, the whole file's and the SHA-256 from the same read.
    assert result["both"]["parts"] == expected_parts
    assert result["both"]["crc64nvme"] == crc64nvme(data)
    assert result["both"]["sha256"] == sha256
    # The second job when the server plans other parts than the page: the CRCs alone.
    assert result["crcOnly"]["parts"] == expected_parts
    assert result["crcOnly"]["crc64nvme"] == crc64nvme(data)
    assert result["crcOnly"]["sha256"] is None
    # A file sent in one POST: its SHA-256 alone.
    assert result["shaOnly"] == {"type": "done", "sha256": sha256, "crc64nvme": None, "parts": {}}


# Every checksum job a page starts, reported to the test (which outlives the page's navigation to the transfer).
_REPORT_JOBS = """
const PageWorker = window.Worker;
window.Worker = function (url, options) {
  const worker = new PageWorker(url, options);
  const post = worker.postMessage.bind(worker);
  let ready = false;  // told to load hash-wasm before its job: the worker the page keeps ready
  worker.postMessage = (job, transfer) => {
    if (job.file) {
      window.reportChecksumJob({ partSize: job.partSize, sha256: job.sha256, ready: ready });
    } else {
      ready = true;
    }
    return post(job, transfer);
  };
  return worker;
};
"""


def send_one_file(page, site, path, *, before_send=lambda: None) -> tuple[list[dict], list[dict]]:
    """Alice sends `path` from the New transfer page and reaches "Sent": the page's checksum jobs and the headers
    of its part PUTs."""
    jobs, puts = [], []
    page.expose_function("reportChecksumJob", lambda job: jobs.append(job))
    page.add_init_script(_REPORT_JOBS)
    page.on("request", lambda r: puts.append(r.headers) if r.method == "PUT" and "partNumber=" in r.url else None)
    sign_in_as(page, site, "alice")
    page.goto(f"{site}/transfers/new")
    before_send()
    page.get_by_label("Recipients", exact=True).fill("bob@partner.example")
    page.get_by_label("Subject", exact=True).fill("Checksums")
    page.locator("#uploader input[type=file]").first.set_input_files(str(path))
    expect(page.get_by_text(path.name)).to_be_visible()
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator(".page-heading .status-ready")).to_have_text("Sent", timeout=60_000)
    # The SHA-256 the page sent is the file's, as sha256sum prints it.
    expect(page.locator("code.checksum")).to_have_text(f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}")
    return jobs, puts


def test_a_file_sent_in_parts_is_read_once_for_its_sha256_and_every_parts_crc(page, site, sending, tmp_path):
    large = tmp_path / "once.bin"
    large.write_bytes(os.urandom(12 * MiB))  # 5 + 5 + 2 MiB parts (the `sending` fixture's plan)
    jobs, puts = send_one_file(page, site, large)
    # One worker, one read, planned as the server planned, in the worker the page had ready (hash-wasm loaded
    # before the file was added: its first part's CRC, which the first PUT waits for, comes that much sooner).
    assert jobs == [{"partSize": 5 * MiB, "sha256": True, "ready": True}]
    assert len(puts) == 3 and all("x-amz-checksum-crc64nvme" in headers for headers in puts)


def test_when_the_server_plans_other_parts_than_the_page_a_second_read_gives_their_crcs(
    page, site, sending, settings, tmp_path
):
    large = tmp_path / "replanned.bin"
    large.write_bytes(os.urandom(13 * MiB))

    def replan():  # the page has planned 5 MiB parts; the server, its settings changed meanwhile, plans 6 MiB
        settings.FXFER_MULTIPART_PART_BYTES = 6 * MiB

    jobs, puts = send_one_file(page, site, large, before_send=replan)
    assert [{k: job[k] for k in ("partSize", "sha256")} for job in jobs] == [
        {"partSize": 5 * MiB, "sha256": True},
        {"partSize": 6 * MiB, "sha256": False},
    ]
    assert len(puts) == 3  # 6 + 6 + 1 MiB: S3 took every part against its CRC, and the whole file's
