"""The Lambda function's handler (zappa_settings.json "lambda_handler"): Zappa's own `handler.lambda_handler`, with
Python's cyclic garbage collector paused while a new process starts.

A cold start creates some 150,000 objects that live as long as the process (modules, classes, functions, the
URLconf, the AWS clients) and almost no garbage. With the collector on, it ran about 70 times between the import
and the end of the first `/healthz` (30-40 ms of a 330 ms cold start, measured with `gc.callbacks`) to find a few
hundred unreachable objects; and a later full collection would walk all 150,000 again (some 70 ms, in the middle
of some request).

So, in a new process:
- the collector is off from this module's import (before Zappa, Django and boto3 are imported);
- a first invocation that is a web request runs with it off; a first invocation that is anything else (a scheduled
  job, an S3 or SNS event, a Zappa command) turns it back on before it runs, since a job may run for minutes;
- when it is turned back on, `gc.freeze()` first moves every object alive then (the start-up's) out of the
  collector's sight for good, so later collections walk only what requests create. The few hundred unreachable
  objects of the start are kept, not collected (a full collection to free them would cost the 70 ms saved).

After that the collector runs with Python's own thresholds. Lambda runs one invocation at a time per process.
"""

import gc

gc.disable()

import handler  # noqa: E402  Zappa's handler.py, at the package's root

_starting = True


def is_web_request(event) -> bool:
    """An API Gateway (REST or HTTP API), function URL or load balancer request, as Zappa's handler tells them."""
    return isinstance(event, dict) and ("httpMethod" in event or "http" in (event.get("requestContext") or {}))


def resume_collector() -> None:
    """The start is over: its objects out of the collector's sight, the collector on."""
    global _starting
    _starting = False
    gc.freeze()
    gc.enable()


def lambda_handler(event, context):
    if not _starting:
        return handler.lambda_handler(event, context)
    if not is_web_request(event):
        resume_collector()
        return handler.lambda_handler(event, context)
    try:
        return handler.lambda_handler(event, context)
    finally:
        resume_collector()
