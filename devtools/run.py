"""`make run`: the whole product on this machine. Starts the AWS stand-ins, provisions them with the same code
production uses, starts Django on http://127.0.0.1:8000 and stops everything on Ctrl-C.

Ports can be moved with FXFER_DEV_PORT (Django), FXFER_DEV_MOTO_PORT and FXFER_DEV_LOCALSTACK_PORT.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading

from devtools.stack import ROOT, port_open, provision, stack, stop_on_signals

SETTINGS = "fxfer.settings.local"
# What Lambda runs every minute (reports.jobs.every_minute: the chainer, then the outbox retry), more often here
# so a local change shows in the audit trail and the mailbox within seconds.
JOBS_EVERY_SECONDS = 10


def start_minute_jobs(env: dict[str, str], stop: threading.Event) -> threading.Thread:
    """Run the minute job in a thread of this process every JOBS_EVERY_SECONDS until `stop` is set."""
    os.environ.update(env)
    import django

    django.setup()
    from reports.jobs import every_minute

    def loop() -> None:
        while not stop.wait(JOBS_EVERY_SECONDS):
            try:
                every_minute(None, None)
            except Exception:  # logged by the job; the next round tries again, as the next minute would
                logging.getLogger("devtools.run").warning("minute job failed; trying again shortly")

    thread = threading.Thread(target=loop, name="fxfer-minute-jobs", daemon=True)
    thread.start()
    return thread


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
        stop_jobs = threading.Event()
        jobs = start_minute_jobs(env, stop_jobs)
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
  Minute job    every {JOBS_EVERY_SECONDS} s here (links audit events into the chain, retries unsent mail)
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
            stop_jobs.set()
            jobs.join(30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
