"""Structured logs: one JSON object per line, so CloudWatch Logs Insights can filter on fields."""

import json
import logging
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Extra fields are kept when they are plain data (Django's server log passes the socket as "request").
_PLAIN = (str, int, float, bool, type(None), list, dict)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Fields passed with logger.info("...", extra={...}) become top-level keys.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, _PLAIN):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
