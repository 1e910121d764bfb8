"""Progress reporting: bars on a terminal, a bounded number of log lines with rate and ETA everywhere else."""

from __future__ import annotations

import io
import logging
import re

import pytest
from tqdm import tqdm

from facemac.progress import LogProgress, progress_bar


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="facemac.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "facemac.progress"]


def test_off_a_terminal_a_long_loop_logs_every_10_percent_with_rate_and_eta(lines):
    clock = FakeClock()
    seen = []
    for i in progress_bar(range(1000), desc="annotate ds", unit="img", tty=False, clock=clock):
        clock.t += 0.1  # 10 img/s, 100 s in all: a 10 % step every 10 s
        seen.append(i)
    assert seen == list(range(1000))
    out = lines()
    assert len(out) == 10  # 10 %, …, 90 %, then the final line (no separate 100 % line)
    assert out[0] == "annotate ds: 100/1000 img (10%), 10 img/s, elapsed 0:10, ETA 1:30"
    assert all(re.fullmatch(r"annotate ds: \d+/1000 img \(\d+%\), 10 img/s, elapsed \d:\d\d, ETA \d:\d\d", s)
               for s in out[:-1])
    assert out[-1] == "annotate ds: done 1000/1000 img in 1:40, 10 img/s"


def test_slow_steps_log_at_the_interval_and_unknown_totals_have_no_eta(lines):
    clock = FakeClock()
    with progress_bar(desc="count P", unit="img", tty=False, clock=clock, interval_s=30) as bar:
        for _ in range(100):
            clock.t += 1.0
            bar.update(50)
    out = lines()
    assert out == ["count P: 1500 img, 50 img/s, elapsed 0:30", "count P: 3000 img, 50 img/s, elapsed 1:00",
                   "count P: 4500 img, 50 img/s, elapsed 1:30", "count P: done 5000 img in 1:40, 50 img/s"]


def test_the_interval_bounds_lines_when_10_percent_takes_long(lines):
    clock = FakeClock()
    bar = progress_bar(total=10, desc="epoch 1", unit="batch", tty=False, clock=clock, interval_s=60)
    clock.t += 45
    bar.update(1)  # 10 % after 45 s: due
    clock.t += 2
    bar.update(1)  # another 10 %, but only 2 s later: waits for the minimum gap
    clock.t += 100
    bar.update(1)
    bar.close()
    bar.close()  # idempotent
    out = lines()
    assert [s.split(",")[0] for s in out] == ["epoch 1: 1/10 batch (10%)", "epoch 1: 3/10 batch (30%)",
                                              "epoch 1: stopped at 3/10 batch (30%) in 2:27"]


def test_short_transient_loops_stay_out_of_the_log(lines):
    clock = FakeClock()
    for _ in progress_bar(range(50), desc="bootstrap", unit="rep", leave=False, tty=False, clock=clock):
        clock.t += 0.01
    assert lines() == []
    for _ in progress_bar(range(50), desc="scan", unit="dir", tty=False, clock=clock):
        clock.t += 0.01
    assert lines() == ["scan: done 50/50 dir in 0:00, 100 dir/s"]


def test_disable_shows_nothing_but_still_iterates(lines):
    clock = FakeClock()
    items = []
    bar = progress_bar(range(5), desc="x", disable=True, tty=False, clock=clock)
    for i in bar:
        clock.t += 100
        items.append(i)
    assert items == [0, 1, 2, 3, 4] and bar.n == 5 and lines() == []


def test_postfix_rides_on_the_next_line_and_an_early_break_reports_where_it_stopped(lines):
    clock = FakeClock()
    bar = progress_bar(range(100), desc="epoch 2", unit="batch", leave=False, tty=False, clock=clock)
    for i, _ in enumerate(bar):  # the trainer's pattern: stop at limit_batches, then close
        if i >= 20:
            break
        clock.t += 1.0
        bar.set_postfix(loss="0.6931", img_s=f"{512:.0f}")
    bar.close()
    out = lines()
    assert out[0] == "epoch 2: 10/100 batch (10%), 1 batch/s, elapsed 0:10, ETA 1:30, loss=0.6931, img_s=512"
    assert out[-1] == "epoch 2: stopped at 20/100 batch (20%) in 0:20, 1 batch/s, loss=0.6931, img_s=512"
    assert len(out) == 3


def test_on_a_terminal_it_is_a_tqdm_bar(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    bar = progress_bar(range(3), desc="epoch 1", unit="batch", leave=False, dynamic_ncols=True)
    assert isinstance(bar, tqdm) and not bar.disable and list(bar) == [0, 1, 2]
    off = progress_bar(total=3, disable=True)
    assert isinstance(off, tqdm) and off.disable
    off.close()
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert isinstance(progress_bar(range(3)), LogProgress)
    assert isinstance(progress_bar(range(3), tty=True), tqdm)
