"""A progress line: redrawn in place on a terminal, plain lines elsewhere.

On a terminal the demo redraws one line with a carriage return; written to a pipe or a log file
that filled it with hundreds of '\\r' updates glued into one line. Elsewhere a plain line is
written when the text has changed and at most every `every_s` seconds, and the last one always.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click


class ProgressLine:
    def __init__(self, *, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self._last_text: str | None = None
        self._written: str | None = None
        self._written_at = float("-inf")

    def show(self, text: str) -> None:
        """The progress now: redrawn on a terminal, else written if due (see the module)."""
        self._last_text = text
        if self.tty:
            click.echo("\r" + text, nl=False, file=self.stream)
            return
        now = time.monotonic()
        if text != self._written and now - self._written_at >= self.every_s:
            click.echo(text.rstrip(), file=self.stream)
            self._written, self._written_at = text, now

    def done(self) -> None:
        """End the line: a newline on a terminal, else the last state if it was not written yet."""
        if self.tty:
            click.echo("", file=self.stream)
        elif self._last_text is not None and self._last_text != self._written:
            click.echo(self._last_text.rstrip(), file=self.stream)
            self._written = self._last_text
