"""`make run`: the whole product on this machine. Starts the AWS stand-ins, provisions them with the same code
production uses, starts Django on http://127.0.0.1:8000 and stops everything on Ctrl-C.

Ports can be moved with FXFER_DEV_PORT (Django), FXFER_DEV_MOTO_PORT and FXFER_DEV_LOCALSTACK_PORT.

Sign-in goes through the built-in IdP (devtools/idp) unless FXFER_SAML_IDP_ENTITY_ID, FXFER_SAML_IDP_SSO_URL and
FXFER_SAML_IDP_CERTS name a real one (with FXFER_EMPLOYEE_GROUPS / FXFER_COMPLIANCE_GROUPS): then that IdP is
trusted, the built-in one is off, and the site runs on http://localhost (the address Entra ID accepts for http).
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading

from django.core.exceptions import ImproperlyConfigured

from devtools.idp.settings import trusted_idp_from_environment
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


def signin_banner(settings) -> str:
    """Which IdP this run trusts, for the banner: a real one named by the environment, or the built-in one."""
    groups = settings.FXFER_ROLE_GROUPS
    roles = "; ".join(f"{role}: {', '.join(values) or '(none)'}" for role, values in groups.items())
    if not settings.FXFER_LOCAL_IDP:
        return f"""  Sign-in       trusts YOUR IdP {settings.FXFER_SAML_IDP_ENTITY_ID}
                (from FXFER_SAML_IDP_*; give it this SP's metadata: {settings.FXFER_BASE_URL}/saml/metadata/)
                groups {roles}
                The built-in IdP is OFF: nothing it signs is trusted."""
    return f"""  Sign-in       the BUILT-IN IdP at {settings.FXFER_BASE_URL}/idp/sso/ (demo people; not a real IdP)
                groups {roles}
                Set FXFER_SAML_IDP_* and the FXFER_*_GROUPS to trust your own IdP instead."""


def main() -> int:
    web_port = int(os.environ.get("FXFER_DEV_PORT", "8000"))
    if port_open(web_port):
        raise SystemExit(f"Port {web_port} on 127.0.0.1 is in use (is another `make run` still running?).")
    try:
        own_idp = trusted_idp_from_environment()
    except ImproperlyConfigured as exc:
        raise SystemExit(str(exc)) from None
    # A real IdP posts back from another site: Entra ID accepts http reply URLs on localhost only, and browsers
    # let the sign-in's binding cookie cross sites (Secure) only from localhost.
    base_url = f"http://{'localhost' if own_idp else '127.0.0.1'}:{web_port}"
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
        from django.conf import settings  # configured by start_minute_jobs, from `env`

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
{signin_banner(settings)}
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
