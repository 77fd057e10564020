"""Cold start of the built Lambda package on this machine (`make bench-coldstart`).

    python -m bench.coldstart [--runs 7]

Prints dist/fxfer-dev.zip's zipped and unzipped size, then runs N fresh Python 3.13 processes that see only
the unzipped package (as Lambda does) and times, in each, `import handler` plus the first `/healthz` request
through Zappa's `handler.lambda_handler` (remote env read, Django set-up, one GetItem and one HeadBucket)
against a moto server this script starts, provisions and stops. Prints the median, min and max.
"""

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from devtools import lambda_local, package

TIME_BUDGET_SECONDS = 300


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes to time (default 7)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    signal.signal(signal.SIGTERM, _interrupt)  # stop the moto server on the way out

    zipped, unzipped = package.package_sizes()
    print(f"package   {package.PACKAGE_ZIP.relative_to(package.ROOT)}")
    print(f"zipped    {package.mb(zipped)} ({zipped:,} bytes)")
    limit = package.mb(package.LAMBDA_UNZIPPED_LIMIT)
    print(f"unzipped  {package.mb(unzipped)} ({unzipped:,} bytes; Lambda's limit {limit})")

    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    with tempfile.TemporaryDirectory(prefix="fxfer-coldstart-") as scratch, lambda_local.stand_ins() as stand_in:
        package_dir = lambda_local.unzip_package(Path(scratch))
        env = stand_in.lambda_env(package_dir)
        imports, firsts, totals = [], [], []
        for run in range(1, args.runs + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                print(f"time budget of {TIME_BUDGET_SECONDS} s spent after {run - 1} runs")
                break
            result = lambda_local.invoke(
                package_dir, [lambda_local.api_gateway_event("/healthz")], env=env, timeout=remaining
            )
            response = result.response(0)
            if response["statusCode"] != 200:
                raise SystemExit(f"/healthz answered {response['statusCode']}: {response.get('body')}\n{result.log}")
            first = result.invocations[0]["seconds"]
            imports.append(result.import_seconds)
            firsts.append(first)
            totals.append(result.import_seconds + first)
            ms = result.import_seconds * 1000, first * 1000
            print(f"run {run}: import handler {ms[0]:.0f} ms + first /healthz {ms[1]:.0f} ms")

    if not totals:
        return 1
    print(f"cold start over {len(totals)} fresh processes (handler import + first /healthz):")
    for label, values in (("total", totals), ("import handler", imports), ("first /healthz", firsts)):
        print(
            f"  {label:<15} median {statistics.median(values) * 1000:5.0f} ms"
            f"   min {min(values) * 1000:5.0f} ms   max {max(values) * 1000:5.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
