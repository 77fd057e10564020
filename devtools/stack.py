"""The local stand-ins for AWS: moto (DynamoDB, SES; SNS and SQS for provisioning) and LocalStack (S3 and KMS,
enforcing POST policies, CORS and presigned-URL signatures). Used by `make run` and by the integration test tier.

    python -m devtools.stack [--provision] -- COMMAND ...

starts both on free loopback ports, exports their endpoints (FXFER_*_ENDPOINT) to COMMAND, runs it and
stops everything it started, whatever COMMAND's outcome. Never part of the Lambda package.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALSTACK_PYTHON = ROOT / ".venv-localstack" / "bin" / "python"

# Credentials the stand-ins accept; never real ones.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "ap-northeast-1",
    "AWS_REGION": "ap-northeast-1",
    "FXFER_AWS_REGION": "ap-northeast-1",
}


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end the run through KeyboardInterrupt, so every `finally` stops what it started.
    (A shell starting us in the background would otherwise leave SIGINT ignored.)"""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[str]:
    """moto in a thread of this process: DynamoDB (conditions, transactions, GSIs) and SES (keeps sent mail)."""
    import logging

    from moto.server import ThreadedMotoServer

    from devtools.moto_atomic import patch_moto_dynamodb

    patch_moto_dynamodb()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per AWS call
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def localstack(port: int, *, log_path: Path | None = None) -> Iterator[str]:
    """LocalStack's S3 and KMS in their own venv and process, with signature validation on."""
    if not LOCALSTACK_PYTHON.exists():
        raise SystemExit("LocalStack is not installed: run `make setup` first.")
    state = Path(tempfile.mkdtemp(prefix="fxfer-localstack-"))
    env = {
        **os.environ,
        **FAKE_AWS,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": "s3,kms",
        "S3_SKIP_SIGNATURE_VALIDATION": "0",
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "LOCALSTACK_VOLUME_DIR": str(state / "volume"),
        "TMPDIR": str(state),
        "PERSISTENCE": "0",
    }
    log = open(log_path or state / "localstack.log", "ab")
    process = subprocess.Popen(
        [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop it in order
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_localstack(url, process, timeout=60)
        yield url
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(state, ignore_errors=True)


def _wait_localstack(url: str, process: subprocess.Popen, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LocalStack exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/_localstack/health", timeout=1) as response:
                services = json.load(response).get("services", {})
            if services.get("s3") in {"available", "running"} and services.get("kms") in {"available", "running"}:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"LocalStack was not ready within {timeout:.0f} s")


def _stop(process: subprocess.Popen, grace: float = 10) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def stack(*, moto_port: int | None = None, localstack_port: int | None = None) -> Iterator[dict[str, str]]:
    """Both stand-ins; yields the environment that points the app at them."""
    moto_port = moto_port or free_port()
    localstack_port = localstack_port or free_port()
    for port in (moto_port, localstack_port):
        if port_open(port):
            raise SystemExit(f"Port {port} on 127.0.0.1 is in use (is another `make run` still running?).")
    with moto_server(moto_port) as moto_url, localstack(localstack_port) as localstack_url:
        yield {
            **FAKE_AWS,
            "FXFER_DYNAMODB_ENDPOINT": moto_url,
            "FXFER_SES_ENDPOINT": moto_url,
            # Provisioning only: the SES notifications topic and the failed-events queue.
            "FXFER_SNS_ENDPOINT": moto_url,
            "FXFER_SQS_ENDPOINT": moto_url,
            "FXFER_S3_ENDPOINT": localstack_url,
            "FXFER_KMS_ENDPOINT": localstack_url,
        }


def provision(env: dict[str, str], settings_module: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "provision"],
        cwd=ROOT,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": settings_module},
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provision", metavar="SETTINGS", help="run `manage.py provision` with these settings first")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run after --")
    stop_on_signals()
    with stack() as env:
        if args.provision:
            provision(env, args.provision)
        return subprocess.run(command, env={**os.environ, **env}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
