"""Progress that reads well anywhere: a tqdm bar on a terminal, otherwise (SLURM, CI, W&B's captured output) a log line
at a fixed interval with count, rate and ETA, so carriage-return updates never turn into thousands of lines.

    for batch in progress_bar(loader, desc="epoch 1", unit="batch"): ...
    with progress_bar(total=n, desc="annotate", unit="img") as bar: bar.update(k)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

INTERVAL_S = 30.0  # a line at least this often while work goes on
FRACTION = 0.10  # ... or after each further 10 % of the total
MIN_GAP_S = 5.0  # but never two lines closer than this: a loop of a few seconds gets its final line only


def is_terminal(stream: Any = None) -> bool:
    """True when ``stream`` (default stderr, where tqdm draws) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it", *,
             disable: bool | None = False, leave: bool = True, tty: bool | None = None,
             interval_s: float = INTERVAL_S, fraction: float = FRACTION, min_gap_s: float = MIN_GAP_S,
             clock: Callable[[], float] = time.monotonic, logger: logging.Logger | None = None,
             **bar_kwargs: Any) -> Any:
    """A tqdm bar when stderr is a terminal (``tty`` overrides the check), else a ``LogProgress`` with the same use.

    ``disable=True`` shows nothing either way (``None`` counts as shown: off a terminal the log lines replace the bar).
    ``leave=False`` keeps a short loop out of the log: its final line appears only if a periodic line did.
    ``bar_kwargs`` (``dynamic_ncols``, …) go to tqdm only.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if is_terminal() if tty is None else tty:
        from tqdm.auto import tqdm
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=bool(disable), leave=leave, **bar_kwargs)
    return LogProgress(iterable, total, desc, unit, disable=bool(disable), leave=leave, interval_s=interval_s,
                       fraction=fraction, min_gap_s=min_gap_s, clock=clock, logger=logger)


def _duration(seconds: float) -> str:
    """H:MM:SS or M:SS."""
    s = int(round(max(seconds, 0.0)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _number(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


class LogProgress:
    """tqdm's small API (iteration, ``update``, ``set_postfix``, ``close``, context manager) as periodic log lines."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 *, disable: bool = False, leave: bool = True, interval_s: float = INTERVAL_S,
                 fraction: float = FRACTION, min_gap_s: float = MIN_GAP_S,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger | None = None):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.disable, self.leave = disable, leave
        self.interval_s, self.fraction, self.min_gap_s = interval_s, fraction, min_gap_s
        self.clock, self.log = clock, logger or log
        self.n = 0
        self.lines = 0  # log lines written so far
        self.postfix = ""
        self.start_t = self._last_t = clock()
        self._last_n = 0
        self._closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("progress_bar(): nothing to iterate; pass an iterable or call update()")
        try:
            for obj in self.iterable:
                yield obj
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total) if self.total is not None else len(self.iterable)  # type: ignore[arg-type]

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int | float = 1) -> None:
        """Count ``n`` more; log a line when the interval or the next 10 % step is reached."""
        self.n += n
        if self.disable or self._closed or (self.total is not None and self.n >= self.total):
            return  # the end is close()'s line
        now = self.clock()
        since = now - self._last_t
        step = self.total is not None and self.total > 0 and self.n - self._last_n >= self.fraction * self.total
        if since >= self.interval_s or (step and since >= self.min_gap_s):
            self._emit(now, final=False)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text appended to the next line (e.g. the running loss)."""
        self.postfix = str(s)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """``key=value`` pairs appended to the next line, as tqdm shows them."""
        items = {**(ordered_dict or {}), **kwargs}
        self.set_postfix_str(", ".join(f"{k}={_number(v) if isinstance(v, float) else v}" for k, v in items.items()))

    def close(self) -> None:
        """The final line (unless ``leave=False`` and the loop was too short for any line); idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.disable and (self.leave or self.lines):
            self._emit(self.clock(), final=True)

    def line(self, now: float, final: bool) -> str:
        """``desc: n/total unit (pct%), rate unit/s, elapsed, ETA[, postfix]`` (final: ``done in``/``stopped at``)."""
        elapsed = now - self.start_t
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{_number(self.n)}/{_number(self.total)}" if self.total is not None else _number(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        speed = f"{_number(rate)} {self.unit}/s" if rate > 0 else f"- {self.unit}/s"
        if final:
            head = "done" if self.total is None or self.n >= self.total else "stopped at"
            text = f"{head} {count} {self.unit}{pct if head != 'done' else ''} in {_duration(elapsed)}, {speed}"
        else:
            eta = ""
            if self.total is not None and rate > 0:
                eta = f", ETA {_duration(max(self.total - self.n, 0) / rate)}"
            text = f"{count} {self.unit}{pct}, {speed}, elapsed {_duration(elapsed)}{eta}"
        text += f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {text}" if self.desc else text

    def _emit(self, now: float, final: bool) -> None:
        self.log.info("%s", self.line(now, final))
        self.lines += 1
        self._last_t, self._last_n = now, self.n
