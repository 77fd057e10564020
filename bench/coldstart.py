"""Cold start of the built Lambda package on this machine, beside a bare Django app (`make bench-coldstart`).

    python -m bench.coldstart [--runs 7] [--memory 512,1024,1769]

Prints dist/fxfer-dev.zip's zipped and unzipped size, then runs N fresh Python 3.13 processes of each app,
alternating fxfer and bare, each seeing only its unzipped package (as Lambda does), and times in each the import
of the function's handler plus the first `/healthz` through it, then two warm `/healthz`.

- fxfer: the package as built, with production settings, against a moto server this script starts, provisions
  and stops (its /healthz makes one GetItem and one HeadBucket), X-Ray on as in Lambda (segments go to a local
  UDP socket). Its handler is zappa_settings.json's: fxfer.entry around Zappa's, which pauses Python's garbage
  collector while the process starts.
- bare: a minimal Django 5.2 project (startproject's apps and middleware, no database, a /healthz answering
  JSON) packaged the same way: built here in a temporary directory from the same package's libraries (Django,
  Zappa's handler, boto3, bytecode with checked hashes), same Python, same environment, Zappa's own handler
  (`handler.lambda_handler`). Never committed.

--split adds three apps: "no checks", fxfer's package with its /healthz answering ok without its two AWS checks
(so no client is built), to show how much of the gap to bare Django those checks are; "fxfer, no gc pause", the
package through Zappa's own handler, without fxfer.entry; and "bare, gc paused", the bare app behind a copy of
fxfer.entry, to show what the collector's pause gives a bare Django (fxfer's ratio to it is the gap the pause does
not close).

Each run calls the handlers at its own stack depth, the same for every app: run i of N, i x 136 / N frames deeper
than the harness's own. CPython 3.13.0 (this machine's) allocates the frame stack in 16 KiB chunks (136 of those
frames) and maps and unmaps a chunk each time a call crosses a chunk's end (python/cpython#142183, fixed in the 3.13
branch in March 2026 (#146123), which Lambda's runtime takes): a loop whose calls sit on a chunk's end, such as
compiling urllib3's IPv6 regexes during an import, costs up to some 40 ms more at some depths than at others. At
one fixed depth the apps' ratio was partly luck; spread evenly over a chunk's length, each app pays its average.

--memory runs each app inside a cgroup whose CPU quota is the share Lambda gives that memory size (1 vCPU at
1,769 MB, proportionally less below) when this machine lets us make one (cgroup v1 `cpu` controller, as root);
otherwise the times under that share are estimated from each process's CPU time (wall - CPU + CPU / share).
Prints medians, min and max, the fxfer/bare ratio, the load average before and after.
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devtools import lambda_local, package

TIME_BUDGET_SECONDS = 600
# Lambda gives a function one full vCPU at 1,769 MB, and a proportional share below.
FULL_VCPU_MB = 1769
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 20_000
WARM_REQUESTS = 2
# Python frames of lambda_local's `at_depth` in one 16 KiB chunk of CPython 3.13's frame stack (measured: a call
# loop is slow at depths 133 and 269 and at none between).
STACK_PERIOD = 136

BARE_PROJECT = "barebones"
# `django-admin startproject`'s settings, without a database (the package carries no database backend).
BARE_SETTINGS = """\
SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "barebones.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DATABASES = {}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""
BARE_URLS = """\
from django.contrib import admin
from django.http import JsonResponse
from django.urls import path


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [path("admin/", admin.site.urls), path("healthz", healthz)]
"""
# What of fxfer's package is fxfer's own (the bare app gets every library beside it, none of this).
NOT_LIBRARIES = {
    *package.project_packages(),
    "templates",
    "static",
    "staticfiles",
    "locale",
    "deploy",
    "manage.py",
    "zappa_settings.py",
    "zappa_settings.json",
    "package_info.json",
    "requirements.txt",
    "requirements-deploy.txt",
}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def build_bare(package_dir: Path, destination: Path) -> Path:
    """A bare Django project beside hard links to `package_dir`'s libraries, with Zappa's handler and a
    zappa_settings.py like fxfer's but naming the bare settings (no remote_env, no events)."""
    destination.mkdir()
    for entry in package_dir.iterdir():
        if entry.name in NOT_LIBRARIES:
            continue
        target = destination / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, copy_function=os.link)
        else:
            os.link(entry, target)
    zappa = (package_dir / "zappa_settings.py").read_text()
    replacements = {
        "REMOTE_ENV": "None",
        "DJANGO_SETTINGS": f"'{BARE_PROJECT}.settings'",
        "ENVIRONMENT_VARIABLES": "{}",
        "AWS_EVENT_MAPPING": "{}",
        "PROJECT_NAME": f"'{BARE_PROJECT}'",
    }
    for name, value in replacements.items():
        zappa = re.sub(rf"^{name}=.*$", f"{name}={value}", zappa, flags=re.MULTILINE)
    (destination / "zappa_settings.py").write_text(zappa)
    project = destination / BARE_PROJECT
    project.mkdir()
    (project / "__init__.py").write_text("")
    (project / "settings.py").write_text(BARE_SETTINGS)
    (project / "urls.py").write_text(BARE_URLS)
    # fxfer's handler module, for --split's "bare, gc paused" (the default handler stays Zappa's own).
    shutil.copyfile(package_dir / "fxfer" / "entry.py", project / "entry.py")
    # As devtools.package does for fxfer: bytecode with checked hashes, valid whatever the files' dates (Zappa
    # writes zappa_settings.py after that step, so neither package has its bytecode).
    python = str(lambda_local.base_python())
    subprocess.run([python, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", str(project)], check=True)
    return destination


# In fxfer/views.py: the /healthz checks that build the two AWS clients, and what --split puts in their place.
HEALTH_CHECKS = (
    'checks = {"dynamodb": dynamo.reachable(), "s3": storage.bucket_reachable()}',
    'checks = {"dynamodb": (True, "not checked"), "s3": (True, "not checked")}',
)
HEALTH_IMPORTS = ("from fxfer import dynamo\nfrom transfers import storage\n", "")


def build_without_checks(destination: Path) -> Path:
    """The package again, its /healthz answering without calling DynamoDB or S3 (nor importing what calls them)."""
    lambda_local.unzip_package(destination)
    views = destination / "fxfer" / "views.py"
    text = views.read_text()
    for old, new in (HEALTH_CHECKS, HEALTH_IMPORTS):
        if old not in text:
            raise SystemExit(f"--split: fxfer/views.py no longer has {old!r}; update bench/coldstart.py")
        text = text.replace(old, new)
    views.write_text(text)
    python = str(lambda_local.base_python())
    subprocess.run([python, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", str(views)], check=True)
    return destination


@contextlib.contextmanager
def cpu_share(memory_mb: int | None) -> Iterator[Path | None]:
    """A cgroup (v1 `cpu`) limited to the CPU Lambda gives `memory_mb`; None when unlimited or when this machine
    does not let us make one (the caller then estimates from CPU time)."""
    if memory_mb is None or memory_mb >= FULL_VCPU_MB:
        yield None
        return
    group = CGROUP_CPU / f"fxfer-bench-{os.getpid()}-{memory_mb}"
    try:
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(int(CFS_PERIOD_US * memory_mb / FULL_VCPU_MB)))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        yield None
        return
    try:
        yield group
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


@dataclass
class Series:
    """One app's runs: the cold start (import + first /healthz), its CPU time, and a warm /healthz's CPU."""

    cold: list[float] = field(default_factory=list)
    cold_cpu: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    warm_cpu: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)

    def add(self, result: lambda_local.Invocation) -> None:
        first = result.invocations[0]
        self.imports.append(result.import_seconds)
        self.cold.append(result.import_seconds + first["seconds"])
        self.cold_cpu.append(result.import_cpu_seconds + first["cpu_seconds"])
        self.warm.extend(i["seconds"] for i in result.invocations[1:])
        self.warm_cpu.extend(i["cpu_seconds"] for i in result.invocations[1:])

    def estimated(self, values: list[float], cpus: list[float], memory_mb: int) -> list[float]:
        share = min(1.0, memory_mb / FULL_VCPU_MB)
        return [wall - cpu + cpu / share for wall, cpu in zip(values, cpus, strict=True)]


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:5.0f} ms (min {min(values) * 1000:4.0f}, max {max(values) * 1000:4.0f})"


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


@dataclass(frozen=True)
class App:
    directory: Path
    env: dict[str, str]
    handler: str  # the function's handler: module.function


def run_series(
    apps: dict[str, App], *, runs: int, memory_mb: int | None, deadline: float
) -> tuple[dict[str, Series], bool]:
    """`runs` alternating cold processes of each app; whether a cgroup enforced the CPU share."""
    series = {name: Series() for name in apps}
    events = [lambda_local.api_gateway_event("/healthz")] * (1 + WARM_REQUESTS)
    with cpu_share(memory_mb) as group:
        for run in range(1, runs + 1):
            stack_pad = (run - 1) * STACK_PERIOD // runs
            for name, app in apps.items():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    print(f"time budget of {TIME_BUDGET_SECONDS} s spent")
                    return series, group is not None
                result = lambda_local.invoke(
                    app.directory,
                    events,
                    env=app.env,
                    timeout=remaining,
                    cpu_group=group,
                    handler=app.handler,
                    stack_pad=stack_pad,
                )
                for index in range(len(events)):
                    response = result.response(index)
                    if response["statusCode"] != 200:
                        raise SystemExit(f"{name}: /healthz answered {response['statusCode']}\n{result.log}")
                series[name].add(result)
                print(
                    f"  run {run} (stack +{stack_pad:3}) {name:<18} import {result.import_seconds * 1000:4.0f} ms"
                    f" + first /healthz {result.invocations[0]['seconds'] * 1000:4.0f} ms"
                )
    return series, group is not None


def report(series: dict[str, Series], *, memory_mb: int | None, enforced: bool) -> None:
    fxfer, bare = series["fxfer"], series["bare"]
    if not fxfer.cold or not bare.cold:
        return
    if memory_mb is not None and not enforced and memory_mb < FULL_VCPU_MB:
        cold = {name: s.estimated(s.cold, s.cold_cpu, memory_mb) for name, s in series.items()}
        how = f"estimated from CPU time for {memory_mb} MB's share"
    else:
        cold = {name: s.cold for name, s in series.items()}
        how = f"under {memory_mb} MB's CPU share (cgroup)" if memory_mb and enforced else "whole CPU"
    ratio = statistics.median(cold["fxfer"]) / statistics.median(cold["bare"])
    print(f"cold start (import of the handler + first /healthz), {len(fxfer.cold)} runs each, {how}:")
    print(f"  fxfer  {_ms(cold['fxfer'])}   CPU {_ms(fxfer.cold_cpu)}   import {_ms(fxfer.imports)}")
    print(f"  bare   {_ms(cold['bare'])}   CPU {_ms(bare.cold_cpu)}   import {_ms(bare.imports)}")
    print(f"  ratio  {ratio:.2f}x (fxfer / bare, medians)")
    for name in [name for name in series if name not in ("fxfer", "bare")]:
        if cold[name]:
            other = statistics.median(cold[name]) / statistics.median(cold["bare"])
            print(f"  {name}: {_ms(cold[name])}   CPU {_ms(series[name].cold_cpu)}   {other:.2f}x bare")
    print(f"  warm /healthz: fxfer {_ms(fxfer.warm)}, CPU {_ms(fxfer.warm_cpu)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes of each app (default 7)")
    parser.add_argument(
        "--memory",
        default="",
        help="comma-separated Lambda memory sizes (MB) to run under their CPU share too, e.g. 512,1024,1769",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="also run fxfer with /healthz answering without its DynamoDB and S3 checks (what they cost)",
    )
    parser.add_argument(
        "--no-xray",
        action="store_true",
        help="tracing off (zappa_settings xray_tracing false): the issue's first measurement was taken so",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    memories = [int(size) for size in args.memory.split(",") if size.strip()]
    signal.signal(signal.SIGTERM, _interrupt)  # stop the moto server on the way out

    zipped, unzipped = package.package_sizes()
    print(f"package   {package.PACKAGE_ZIP.relative_to(package.ROOT)}")
    print(f"zipped    {package.mb(zipped)} ({zipped:,} bytes)")
    limit = package.mb(package.LAMBDA_UNZIPPED_LIMIT)
    print(f"unzipped  {package.mb(unzipped)} ({unzipped:,} bytes; Lambda's limit {limit})")
    print(f"python    {lambda_local.base_python()}")

    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    with (
        tempfile.TemporaryDirectory(prefix="fxfer-coldstart-") as scratch,
        lambda_local.stand_ins() as stand_in,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as xray,
    ):
        xray.bind(("127.0.0.1", 0))  # X-Ray segments land here, unread, as on a Lambda with tracing on
        package_dir = lambda_local.unzip_package(Path(scratch) / "fxfer")
        bare_dir = build_bare(package_dir, Path(scratch) / "bare")
        xray_port = None if args.no_xray else xray.getsockname()[1]
        fxfer_handler = lambda_local.function_handler()
        apps = {
            "fxfer": App(package_dir, stand_in.lambda_env(package_dir, xray_port=xray_port), fxfer_handler),
            "bare": App(bare_dir, stand_in.lambda_env(bare_dir, xray_port=xray_port), lambda_local.ZAPPA_HANDLER),
        }
        if args.split:
            unchecked = build_without_checks(Path(scratch) / "no-checks")
            apps["no checks"] = App(unchecked, stand_in.lambda_env(unchecked, xray_port=xray_port), fxfer_handler)
            apps["fxfer, no gc pause"] = App(package_dir, apps["fxfer"].env, lambda_local.ZAPPA_HANDLER)
            apps["bare, gc paused"] = App(bare_dir, apps["bare"].env, f"{BARE_PROJECT}.entry.lambda_handler")
        for memory_mb in [None, *memories]:
            label = "whole CPU" if memory_mb is None else f"{memory_mb} MB"
            before = _load()
            print(f"{label}: {args.runs} alternating runs, load average {before}")
            series, enforced = run_series(apps, runs=args.runs, memory_mb=memory_mb, deadline=deadline)
            report(series, memory_mb=memory_mb, enforced=enforced)
            print(f"  load average before {before}, after {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
