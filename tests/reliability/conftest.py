"""The fault-injection suite: each flow under each fault kind at each of its AWS calls (tests/faults.py).
`make fault-matrix` collects every case into one Markdown table (FXFER_FAULT_MATRIX names the file)."""

import os

from tests.faults import MATRIX, matrix_text


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if MATRIX and os.environ.get("FXFER_FAULT_MATRIX"):
        path = os.environ["FXFER_FAULT_MATRIX"]
        with open(path, "a", encoding="utf-8") as out:
            out.write(matrix_text(MATRIX) + "\n")
        terminalreporter.write_line(f"fault matrix: {len(MATRIX)} cases written to {path}")
