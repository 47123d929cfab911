"""ConfigError: everything wrong with a config file, in one exception."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong. `message` names the section, option, bad value and what is allowed."""

    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ConfigError(ValueError):
    """The configuration is unusable. `problems` holds all of them (never just the first)."""

    def __init__(self, problems: Iterable[Problem | str], source: str | None = None):
        self.problems: tuple[Problem, ...] = tuple(
            p if isinstance(p, Problem) else Problem(str(p)) for p in problems
        )
        self.source = source
        super().__init__(self._text())

    @property
    def errors(self) -> list[str]:
        """The problems as printable lines (`line 12: uplink 'wwan': ...`)."""
        return [str(p) for p in self.problems]

    def _text(self) -> str:
        n = len(self.problems)
        head = f"{n} error{'s' if n != 1 else ''} in {self.source or 'configuration'}"
        return head + ":\n" + "\n".join(f"  {e}" for e in self.errors)
