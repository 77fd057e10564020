"""Every refusal the transfers app raises answers with its own status and words, not the generic 400 that
TransferError gives a code MESSAGES does not know."""

import ast
from pathlib import Path

import pytest

from transfers.errors import MESSAGES, TransferError

ROOT = Path(__file__).resolve().parents[2]


def _raised_codes() -> set[str]:
    """The first argument of every TransferError(...) in the apps' code (a literal code)."""
    codes = set()
    for app in ("transfers", "reports", "accounts"):
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "TransferError"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    codes.add(node.args[0].value)
    return codes


def test_every_raised_code_has_a_status_and_message():
    codes = _raised_codes()
    assert {"recipients_unconfirmed", "already_sent", "comment_required"} <= codes  # the walk finds them
    assert sorted(codes - MESSAGES.keys()) == []


@pytest.mark.parametrize(
    ("code", "status"),
    [("recipients_unconfirmed", 400), ("already_sent", 409), ("comment_required", 400), ("delegate_invalid", 400)],
)
def test_gate_refusals_answer_their_status(code, status):
    error = TransferError(code)
    assert error.status == status
    assert error.message != code  # words, not the machine code
