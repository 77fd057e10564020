"""Reading stage values from the environment, and secrets from SSM Parameter Store.

Production settings call ``required()`` so that a missing variable stops the process at start with its name,
instead of failing on the first request that needs it; ``secret()`` for the values kept in SSM (read on first use).
"""

import os
import threading

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import lazy


def required(name: str) -> str:
    """The variable's value; ImproperlyConfigured naming the variable when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(_unset(name))
    return value


def _unset(name: str) -> str:
    # On Lambda every variable comes from zappa_settings.json: the operator needs to know where to look.
    return (
        f"The environment variable {name} must be set (see README, 'Configuration'). On Lambda it comes from "
        "zappa_settings.json's environment_variables (docs/deploy.md, step 2)."
    )


def optional(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def integer(name: str, default: int) -> int:
    raw = optional(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"The environment variable {name} must be a whole number, not {raw!r}.") from None


def boolean(name: str, default: bool) -> bool:
    raw = optional(name).lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"The environment variable {name} must be true or false, not {raw!r}.")


def listing(name: str, default: tuple[str, ...] = ()) -> list[str]:
    """A comma-separated list; blanks dropped."""
    raw = optional(name)
    if not raw:
        return list(default)
    return _split(raw)


def required_listing(name: str) -> list[str]:
    """A comma-separated list that must name at least one item."""
    items = _split(required(name))
    if not items:
        raise ImproperlyConfigured(_unset(name))
    return items


def _split(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- Secrets: SSM Parameter Store, read on first use ---------------------------------------------------------
# On Lambda the secrets (and the SAML certificates, too long for Lambda's 4 KB of environment variables) are SSM
# parameters under the stage's path (docs/deploy.md, step 6). Nothing is read at import: the settings hold lazy
# strings, and the first one used reads every parameter of its path in one GetParameters call (with decryption),
# kept for the life of the process. A request that needs none (the health check, a static file, most scheduled
# jobs) makes no SSM call at all. A failed read is not kept: the next use tries again.

_declared: dict[str, list[str]] = {}  # path -> the names read from it
_values: dict[str, dict[str, str]] = {}  # path -> {name: value}, once read
_values_lock = threading.Lock()
# GetParameters takes at most 10 names a call.
_NAMES_PER_CALL = 10


def secret(name: str, *, path: str) -> str:
    """The value of `name`: the environment variable when it is set (local runs, tests, the package build, an
    operator's shell), otherwise the SSM parameter `<path><name>`, read on first use (a lazy string)."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    names = _declared.setdefault(path, [])
    if name not in names:
        names.append(name)
    return _lazy_parameter(path, name)


def _parameter(path: str, name: str) -> str:
    values = _values.get(path)
    if values is None:
        with _values_lock:
            values = _values.get(path)
            if values is None:
                values = _values[path] = _read_parameters(path, list(_declared[path]))
    return values[name]


_lazy_parameter = lazy(_parameter, str)


def _read_parameters(path: str, names: list[str]) -> dict[str, str]:
    """Every parameter of `names` under `path`, decrypted; ImproperlyConfigured naming each one missing or blank."""
    from django.conf import settings

    from fxfer import aws

    ssm = aws.client("ssm", endpoint=getattr(settings, "FXFER_SSM_ENDPOINT", "") or None)
    found: dict[str, str] = {}
    for start in range(0, len(names), _NAMES_PER_CALL):
        chunk = names[start : start + _NAMES_PER_CALL]
        answer = ssm.get_parameters(Names=[f"{path}{name}" for name in chunk], WithDecryption=True)
        found |= {p["Name"].removeprefix(path): p["Value"] for p in answer.get("Parameters", [])}
    missing = [name for name in names if not found.get(name, "").strip()]
    if missing:
        raise ImproperlyConfigured(
            "These SSM parameters must be set (docs/deploy.md, step 6): "
            + ", ".join(f"{path}{name}" for name in missing)
            + f". Outside Lambda, the environment variables {', '.join(missing)} may stand in for them."
        )
    return {name: found[name].strip() for name in names}


def forget_parameters() -> None:
    """Drop the values read from SSM (tests; the next use reads them again)."""
    with _values_lock:
        _values.clear()
