"""`make run`: the whole product on this machine. Starts the AWS stand-ins, provisions them with the same code
production uses, starts Django on http://127.0.0.1:8000 and stops everything on Ctrl-C.

Ports can be moved with FXFER_DEV_PORT (Django), FXFER_DEV_MOTO_PORT and FXFER_DEV_LOCALSTACK_PORT.
"""

import contextlib
import os
import signal
import subprocess
import sys

from devtools.stack import ROOT, port_open, provision, stack, stop_on_signals

SETTINGS = "fxfer.settings.local"


def main() -> int:
    web_port = int(os.environ.get("FXFER_DEV_PORT", "8000"))
    if port_open(web_port):
        raise SystemExit(f"Port {web_port} on 127.0.0.1 is in use (is another `make run` still running?).")
    base_url = f"http://127.0.0.1:{web_port}"
    stop_on_signals()
    print("Starting the local stand-ins for AWS (moto: DynamoDB, SES; LocalStack: S3, KMS) ...", flush=True)
    with stack(
        moto_port=int(os.environ.get("FXFER_DEV_MOTO_PORT", "5000")),
        localstack_port=int(os.environ.get("FXFER_DEV_LOCALSTACK_PORT", "4566")),
    ) as aws_env:
        env = {**os.environ, **aws_env, "DJANGO_SETTINGS_MODULE": SETTINGS, "FXFER_BASE_URL": base_url}
        provision(env, SETTINGS)
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{web_port}"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        print(
            f"""
fxfer is running.
  Open          {base_url}/
  Health        {base_url}/healthz
  Local mailbox {base_url}/dev/mailbox/   (mail sent to guests and employees)
Press Ctrl-C to stop everything.
""",
            flush=True,
        )
        try:
            return server.wait()
        except KeyboardInterrupt:
            print("\nStopping ...", flush=True)
            return 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
