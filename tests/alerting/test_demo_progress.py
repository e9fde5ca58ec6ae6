"""The demo's progress lines: redrawn in place on a terminal, never a carriage return in a log."""

from __future__ import annotations

import io

from alerting.interfaces.demo.progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_into_a_log_progress_is_plain_lines_and_the_last_state_is_written():
    log = io.StringIO()
    line = ProgressLine(stream=log, every_s=3600)
    for done in range(0, 1001, 10):
        line.show(f"  flood warning [{done:>5}/1000]")
    line.done()
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines() == ["  flood warning [    0/1000]", "  flood warning [ 1000/1000]"]


def test_on_a_terminal_the_line_is_redrawn_in_place():
    tty = Terminal()
    line = ProgressLine(stream=tty)
    line.show("a")
    line.show("b")
    line.done()
    assert tty.getvalue() == "\ra\rb\n"
