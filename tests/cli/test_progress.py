"""Issue 27 item 14: long commands show items done / total and the time left, on a terminal and in a log."""

import io

from chatbot.cli._progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_terminal_gets_a_bar_with_done_total_and_time_left():
    out, clock = io.StringIO(), Clock()
    bar = Progress(4, "preparing pairs", stream=out, clock=clock, tty=True)
    assert "0/4 (0%)" in out.getvalue() and "estimating time left" in out.getvalue()
    clock.t += 30
    bar.advance()
    frame = out.getvalue().split("\r")[-1]
    assert frame.startswith("preparing pairs [######------------------] 1/4 (25%)")
    assert "1 min 30 s left" in frame  # 30 s per item, 3 items to go
    clock.t += 90
    bar.advance(3)
    bar.close()
    assert out.getvalue().endswith("4/4 (100%) · took 2 min 00 s\x1b[K\n")


def test_a_log_gets_a_plain_line_every_few_seconds_not_one_per_item():
    out, clock = io.StringIO(), Clock()
    with Progress(10, "preparing pairs", stream=out, clock=clock, every_s=10, tty=False) as bar:
        for _ in range(10):
            clock.t += 4
            bar.advance()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "preparing pairs: 0/10 (0%) · estimating time left"
    assert lines[1] == "preparing pairs: 3/10 (30%) · 28 s left"  # 12 s in: the first line due
    assert lines[-1] == "preparing pairs: 10/10 (100%) · took 40 s"
    assert 4 <= len(lines) <= 6


def test_durations_read_as_people_say_them():
    assert [format_duration(s) for s in (0, 45, 185, 3720)] == ["0 s", "45 s", "3 min 05 s", "1 h 02 min"]
