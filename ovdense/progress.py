"""Progress of long loops: a bar on a terminal, a line now and then in a log, or a callback.

Library code reports ``(stage, done, total)`` to a :data:`ProgressFn` when the caller gives one (the web
demo forwards it to the page); tools and long library loops use :func:`progress_bar`, which draws
mmengine's bar on a terminal and, when the output is a file or a pipe (a log, CI), prints one line when
it starts, at most one every ``interval`` seconds, and one at the end, instead of a line per item.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

ProgressFn = Callable[[str, int, int], None]
"""``fn(stage, done, total)``: ``done`` of ``total`` steps of ``stage`` (e.g. ``'text'``, ``'windows'``)."""


class _LogProgress:
    """Periodic lines for non-terminal output."""

    def __init__(self, total: int, desc: str, interval: float, stream: TextIO) -> None:
        self.total, self.desc, self.interval, self.stream = total, desc, interval, stream
        self.done = 0
        self.start = self.last = time.monotonic()
        self._print()

    def _print(self) -> None:
        elapsed = time.monotonic() - self.start
        pct = 100.0 * self.done / self.total if self.total else 100.0
        print(f'[{self.desc}] {self.done}/{self.total} ({pct:.0f}%), {elapsed:.0f} s', file=self.stream, flush=True)

    def update(self, num: int = 1) -> None:
        self.done += num
        now = time.monotonic()
        if self.done >= self.total or now - self.last >= self.interval:
            self.last = now
            self._print()


class _BarProgress:
    def __init__(self, total: int, stream: TextIO) -> None:
        from mmengine.utils import ProgressBar
        self.bar = ProgressBar(total, file=stream)
        self.done, self.total, self.stream = 0, total, stream

    def update(self, num: int = 1) -> None:
        for _ in range(num):
            self.bar.update()
        self.done += num
        if self.done >= self.total:
            self.stream.write('\n')
            self.stream.flush()


def progress_bar(total: int, desc: str = 'progress', *, interval: float = 10.0,
                 stream: TextIO | None = None) -> _LogProgress | _BarProgress:
    """A progress reporter with ``update(num=1)``: mmengine's bar on a terminal, else periodic lines."""
    stream = stream or sys.stdout
    if getattr(stream, 'isatty', lambda: False)():
        return _BarProgress(total, stream)
    return _LogProgress(total, desc, interval, stream)


def stage_progress(*, skip: tuple[str, ...] = ('images',), interval: float = 10.0,
                   stream: TextIO | None = None) -> ProgressFn:
    """A :data:`ProgressFn` drawing one :func:`progress_bar` per stage as the library reports it (``'text'`` while
    a vocabulary is embedded, ``'windows'`` / ``'tiles'`` within an image), except the ``skip`` ones (a caller
    counting images itself)."""
    bars: dict[str, tuple[int, _LogProgress | _BarProgress]] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage in skip or total <= 1:
            return
        shown, bar = bars.get(stage, (total, None))
        if bar is None or done < shown or shown >= total:  # a new run of this stage
            bar, shown = progress_bar(total, stage, interval=interval, stream=stream), 0
        bar.update(done - shown)
        bars[stage] = (done, bar)
    return report
