"""One provisioned moto world per test process, put back as it was before every test.

Provisioning (every table with its indexes, TTL and PITR, the KMS key, the bucket with Object Lock, policy,
CORS and lifecycle, the SES sender and configuration set, the SQS queue, ...) costs a few hundred milliseconds
of botocore calls; it ran for every test. Now it runs once per process (per xdist worker): `start()` opens
`mock_aws()` for the session, provisions, and keeps a deep copy of every moto backend the provisioning made
(`snapshot`). `restore()`, before each test, gives every backend back the state of that copy:

- a backend the snapshot holds (DynamoDB, S3, KMS, SES, SQS, SNS, ...) gets a new deep copy of its provisioned
  state, whatever the last test did to it: items, object versions, multipart uploads, sent mail and queued
  messages are gone; a table, bucket, policy, key, rule or setting that a test deleted, disabled or changed is
  back as provisioned;
- a backend, account or region a test first used after the snapshot is reset as `mock_aws()` resets it.

Nothing is cleared service by service, so a service a test starts to use needs no change here. A backend that
refers to another backend object (SESv2 to SES, ...) keeps referring to the live object: the copy never
duplicates a backend, only its state.

`fresh()` is for the tests that need a world provisioned anew (marker `fresh_world`): it resets every backend
and provisions again; the next test's `restore()` puts the shared world back.
"""

import copy
import threading

from moto import mock_aws
from moto.core.base_backend import BackendDict

from devtools.moto_atomic import forget_transaction_tokens

_mock = None
# (service, account, region) -> the backend's state (its __dict__) right after provisioning.
_snapshot: dict[tuple[str, str, str], dict] = {}
# The BackendDicts the snapshot covers, by service name.
_services: dict[str, BackendDict] = {}


def _live_backends() -> dict[tuple[str, str, str], object]:
    return {
        (backends.service_name, account, region): backend
        for backends in list(BackendDict._instances)
        for account, per_account in list(backends.items())
        for region, backend in list(per_account.items())
    }


# Locks a backend keeps (SQS: one Condition per queue) cannot be copied: the copy gets a new one.
_NEW_LOCKS = {
    threading.Condition: lambda lock, memo: threading.Condition(),
    type(threading.RLock()): lambda lock, memo: threading.RLock(),
    type(threading.Lock()): lambda lock, memo: threading.Lock(),
}


def _copy(states: dict, live: dict) -> dict:
    """Deep copy of backend states; references to backend objects stay references to the live objects."""
    memo = {id(backend): backend for backend in live.values()}
    dispatch = copy._deepcopy_dispatch
    added = [kind for kind in _NEW_LOCKS if kind not in dispatch]
    dispatch.update({kind: _NEW_LOCKS[kind] for kind in added})
    try:
        return copy.deepcopy(states, memo)
    finally:
        for kind in added:
            del dispatch[kind]


def _provision() -> None:
    from fxfer.provisioning import provision

    list(provision())


def start() -> None:
    """Open moto for the rest of the process and provision the world once."""
    global _mock
    if _mock is not None:
        return
    _mock = mock_aws()
    _mock.start()
    forget_transaction_tokens()
    _provision()
    snapshot()


def stop() -> None:
    global _mock
    if _mock is not None:
        _mock.stop()
        _mock = None
    _snapshot.clear()
    _services.clear()


def snapshot() -> None:
    live = _live_backends()
    _snapshot.clear()
    _snapshot.update(_copy({key: backend.__dict__ for key, backend in live.items()}, live))
    _services.clear()
    _services.update({backends.service_name: backends for backends in BackendDict._instances})


def restore() -> None:
    """Every backend back to its provisioned state; whatever a test added after the snapshot, reset."""
    forget_transaction_tokens()
    for backends in list(BackendDict._instances):
        if _services.get(backends.service_name) is not backends:
            # First used after provisioning: reset as mock_aws() resets.
            for per_account in backends.values():
                per_account.reset()
            backends.clear()
            BackendDict._instances.remove(backends)
            continue
        for account, per_account in list(backends.items()):
            for region, backend in list(per_account.items()):
                if (backends.service_name, account, region) not in _snapshot:
                    backend.reset()
                    del per_account[region]
            if not per_account:
                del backends[account]
    live = _live_backends()
    states = _copy(_snapshot, live)
    for key, state in states.items():
        service, account, region = key
        backend = live.get(key)
        if backend is None:
            # A test removed it (or reset moto): a new backend object, with the provisioned state.
            backends = _services[service]
            if backends not in BackendDict._instances:
                BackendDict._instances.append(backends)
            backend = backends[account][region]
        else:
            backend.reset()  # releases what the test left (S3 keeps object bodies in temporary files)
        backend.__dict__ = state


def fresh() -> None:
    """A world provisioned anew, for a test that changes or checks the provisioning itself."""
    from moto.core.models import reset_model_data

    forget_transaction_tokens()
    BackendDict.reset()
    reset_model_data()
    _provision()
