"""What surfaces may ask the daemon to do, and the checks every surface applies
before asking (Flask API and ubus give the same answers to the same mistakes)."""

from __future__ import annotations

from typing import Any, Protocol

MAX_FORCE_S = 86400  # a forced primary never outlives a day: it is a repair tool


class Control(Protocol):
    """Implemented by the daemon. Both methods return a JSON-able dict and raise
    ValueError with a sentence for people when the request cannot be honoured
    (unknown uplink, config file invalid, ...)."""

    def force_primary(self, uplink: str, duration_s: int) -> dict[str, Any]:
        """Carry traffic on `uplink` for `duration_s` seconds, then return to the
        policy's choice. duration_s == 0 cancels a running override."""
        ...

    def reload(self) -> dict[str, Any]:
        """Re-read the config file and apply it."""
        ...


def check_force_primary(uplink: Any, duration: Any, duration_name: str = "duration_s") -> tuple[str, int]:
    """Validate force-primary arguments; raise ValueError with a clear message."""
    if not isinstance(uplink, str) or not uplink.strip():
        raise ValueError("'uplink' must be the name of a configured uplink (a non-empty string)")
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise ValueError(f"'{duration_name}' must be a whole number of seconds")
    if not 0 <= duration <= MAX_FORCE_S:
        raise ValueError(
            f"'{duration_name}' must be between 0 (cancel) and {MAX_FORCE_S} seconds, not {duration}"
        )
    return uplink.strip(), duration


def check_since(value: Any) -> int:
    """Validate an events 'since' sequence number."""
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise ValueError("'since' must be a non-negative whole number (an event seq)")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("'since' must be a non-negative whole number (an event seq)")
    return value
