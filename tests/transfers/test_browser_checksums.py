"""In Chromium: the checksum worker (static/js/hash-worker.js) that the New transfer page runs, given files of awkward
sizes. Every part's CRC-64/NVME, the whole file's (the parts' CRCs combined, not a second pass over the bytes) and
the SHA-256 must be exactly what a slow Python reference computes over the same bytes: S3 refuses a part or a
completion whose CRC is off, and recipients compare the SHA-256 with `sha256sum`."""

import base64
import hashlib
import os

import pytest

from tests.conftest import sign_in_as
from tests.transfers.conftest import crc64nvme

pytestmark = [pytest.mark.integration, pytest.mark.browser]

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
  const run = (size) => new Promise((resolve, reject) => {
    const worker = new Worker(workerUrl);
    const parts = {};
    worker.onmessage = (event) => {
      const message = event.data;
      if (message.type === "part") { parts[message.partNumber] = message.crc64nvme; return; }
      worker.terminate();
      message.type === "done" ? resolve({ ...message, parts }) : reject(new Error(message.message));
    };
    worker.postMessage({ file: new Blob([bytes]), partSize: size, scripts });
  });
  return { crc: await run(partSize), sha: await run(0) };
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
def test_the_workers_checksums_are_exactly_the_references_for_every_part_and_the_whole_file(uploader, size, part_size):
    page, worker_url, scripts = uploader
    data = os.urandom(size)
    result = page.evaluate(_RUN_WORKER, [worker_url, scripts, base64.b64encode(data).decode(), part_size])
    expected_parts = {
        str(number): crc64nvme(data[(number - 1) * part_size : number * part_size])
        for number in range(1, -(-size // part_size) + 1)
    }
    assert result["crc"]["parts"] == expected_parts
    assert result["crc"]["crc64nvme"] == crc64nvme(data)
    assert result["sha"]["sha256"] == hashlib.sha256(data).hexdigest()
