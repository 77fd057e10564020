"""Reading stage values and secrets from the environment.

Production settings call ``required()`` so that a missing variable stops the process at start with its name,
instead of failing on the first request that needs it.
"""

import os

from django.core.exceptions import ImproperlyConfigured


def required(name: str) -> str:
    """The variable's value; ImproperlyConfigured naming the variable when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(_unset(name))
    return value


def _unset(name: str) -> str:
    # On Lambda a missing value usually means Zappa could not read the remote environment file (it logs "Could
    # not load remote settings file" and goes on): the operator needs to know where to look.
    return (
        f"The environment variable {name} must be set (see README, 'Configuration'). On Lambda it comes from "
        "zappa_settings.json's environment_variables or the remote_env file in S3 (docs/deploy.md)."
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
