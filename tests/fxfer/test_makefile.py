"""The Makefile's apt step, with stand-ins for apt-get and dpkg on PATH: another apt run holding a lock makes
set-up wait for it, not fail."""

import shutil
import subprocess
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"

DPKG = """#!/bin/sh
exit 1  # every package is missing
"""

# The first `update` finds the package lists locked, as when unattended-upgrades runs; later ones succeed.
APT_GET = """#!/bin/sh
echo "$@" >> "$LOG"
case "$*" in
  *update*)
    if [ ! -e "$STATE" ]; then
      touch "$STATE"
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
      exit 100
    fi;;
esac
exit 0
"""


def run_apt_step(tmp_path: Path, apt_get: str) -> subprocess.CompletedProcess:
    if not shutil.which("make"):
        pytest.fail("make is needed to check the Makefile")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"apt-get": apt_get, "dpkg": DPKG, "sudo": '#!/bin/sh\nexec "$@"\n'}.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LOG": str(tmp_path / "apt.log"),
        "STATE": str(tmp_path / "locked-once"),
    }
    return subprocess.run(
        ["make", "-s", "-f", str(MAKEFILE), ".apt.done", "APT_PACKAGES=xmlsec1 chromium", "APT_LOCK_RETRY_SECONDS=0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_set_up_waits_for_another_apt_run_instead_of_failing(tmp_path):
    result = run_apt_step(tmp_path, APT_GET)
    assert result.returncode == 0, result.stderr
    assert "Waiting for another apt run" in result.stdout
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert [c for c in calls if "update" in c] == ["-o DPkg::Lock::Timeout=600 update -qq"] * 2
    # dpkg's own lock: apt-get waits up to ten minutes for it.
    assert calls[-1] == "-o DPkg::Lock::Timeout=600 install -y -qq xmlsec1 chromium"
    assert (tmp_path / ".apt.done").exists()


def test_an_apt_failure_that_is_not_a_lock_stops_set_up_at_once(tmp_path):
    broken = '#!/bin/sh\necho "$@" >> "$LOG"\necho "E: The repository is not signed." >&2\nexit 100\n'
    result = run_apt_step(tmp_path, broken)
    assert result.returncode != 0
    assert "The repository is not signed" in result.stderr
    assert len((tmp_path / "apt.log").read_text().splitlines()) == 1  # no retry, no install
    assert not (tmp_path / ".apt.done").exists()
