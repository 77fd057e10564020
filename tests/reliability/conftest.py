"""The fault-injection suite: each flow under each fault kind at each of its AWS calls (tests/faults.py).
`make fault-matrix` collects every case into one Markdown table (FXFER_FAULT_MATRIX names the file)."""

import os

import pytest

from tests.faults import MATRIX, matrix_text
from tests.reliability import chain


@pytest.fixture(autouse=True)
def chain_verified_whole():
    """After a test that verified the audit chain case by case (chain.chain_verifies), the whole chain once."""
    chain.reset()
    yield
    chain.verify_whole()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if MATRIX and os.environ.get("FXFER_FAULT_MATRIX"):
        path = os.environ["FXFER_FAULT_MATRIX"]
        with open(path, "a", encoding="utf-8") as out:
            out.write(matrix_text(MATRIX) + "\n")
        terminalreporter.write_line(f"fault matrix: {len(MATRIX)} cases written to {path}")
