"""Progress of a long copy: a bar with rate and ETA on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import sys
import time
from typing import Never, TextIO

from tqdm import tqdm


def describe_progress(done: int, total: int, elapsed: float) -> str:
    """``"1200/5000 (24%) 3100 msg/s, eta 1.2s"``: what a plain progress line says."""
    rate = done / elapsed if elapsed > 0 else 0.0
    percent = 100.0 * done / total if total else 100.0
    if rate > 0 and total >= done:
        eta = f"eta {(total - done) / rate:.1f}s"
    else:
        eta = "eta unknown"
    return f"{done}/{total} ({percent:.0f}%) {rate:.0f} msg/s, {eta}"


class Progress:
    """Counts copied messages; draws a bar only when ``stream`` is a terminal.

    Off a terminal (CI, ``2> file``) a bar's carriage returns make unreadable logs, so a plain
    line is written every ``every_seconds`` instead.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str,
        stream: TextIO | None = None,
        every_seconds: float = 2.0,
        interactive: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.label = label
        self.done = 0
        self.every_seconds = every_seconds
        self.started = time.monotonic()
        self.last_line = self.started
        use_bar = self.stream.isatty() if interactive is None else interactive
        self.bar: tqdm[Never] | None = None
        if use_bar:
            self.bar = tqdm(
                total=total, desc=label, unit="msg", file=self.stream, dynamic_ncols=True
            )

    def advance(self, count: int) -> None:
        if count <= 0:
            return
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every_seconds:
            self.last_line = now
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"{self.label}: {describe_progress(self.done, self.total, elapsed)}\n")
        self.stream.flush()
