"""The release gate (issue 16): what still stands between a transfer whose files are all verified and its
recipients' mails. `transfer_release` asks `release_blockers` inside its pending → ready step and releases only
when nothing blocks; each blocker's own event (a scan result, an approval, the end of a mis-send hold) calls
`transfer_release` again, so the transfer leaves as soon as the last blocker lifts, and the hourly healer
retries any release whose call was lost.

A blocker is a short machine word the sender's, the guest's and compliance's pages turn into words:

    scan       a file has no clean malware-scan result yet (or was found infected): transfers.services.scanning
    approval   the approval policy asks for an approval not yet given: transfers.services.approvals
    hold       the mis-send hold has not ended: transfers.services.missend

Each check is a function (transfer, files, now) -> tuple of blockers, registered in CHECKS below; a check reads
only what it is given (or one item by key), so the gate stays cheap for the healer's loop.
"""

from collections.abc import Callable, Sequence
from datetime import datetime

from transfers.models import GATE_INFECTED, GATE_SCAN, File, Transfer

Check = Callable[[Transfer, Sequence[File], datetime], tuple[str, ...]]

# Registered checks; their blockers come out in ORDER: the files are scanned first, then the sender's hold
# runs out (they may still cancel), and only then is an approver asked, so nobody decides on files that are not
# there, not clean, or still being cancelled.
CHECKS: list[Check] = []
ORDER = ("scan", "hold", "approval")


def release_blockers(transfer: Transfer, files: Sequence[File], now: datetime) -> tuple[str, ...]:
    """Every reason the transfer may not be released yet, in ORDER (empty: it may)."""
    found: list[str] = []
    for check in CHECKS:
        found.extend(b for b in check(transfer, files, now) if b not in found)
    return tuple(sorted(found, key=lambda b: ORDER.index(b) if b in ORDER else len(ORDER)))


def gate_word(blockers: Sequence[str], files: Sequence[File], now: datetime) -> str | None:
    """Transfer.gate for these blockers of these (verified) files: the first one, "infected" when the scan
    found malware in one of them."""
    if not blockers:
        return None
    if blockers[0] == GATE_SCAN and any(_scanning.scan_state(f, now) == _scanning.STATE_INFECTED for f in files):
        return GATE_INFECTED
    return blockers[0]


from transfers.services import approvals as _approvals  # noqa: E402, F401 - registers the "approval" check
from transfers.services import missend as _missend  # noqa: E402, F401 - registers the "hold" check
from transfers.services import scanning as _scanning  # noqa: E402 - registers the "scan" check (and names its states)
