"""PeakMemoryMeter: the peak memory of a block of work (process RSS on CPU, CUDA peak allocation on GPU).

RSS has no resettable peak counter (ru_maxrss only grows over the process), so a daemon thread samples it.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

import psutil
import torch

if TYPE_CHECKING:
    from typing_extensions import Self

_MIB = 1024 * 1024


class PeakMemoryMeter:
    """Context manager; `peak_mb` holds the peak seen between enter and exit."""

    def __init__(self, device: torch.device, interval_seconds: float = 0.005) -> None:
        self.device = device
        self.interval_seconds = interval_seconds
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        process = psutil.Process()
        self._peak_bytes = process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, args=(process,), daemon=True)
        self._thread.start()
        return self

    def current_peak_mb(self) -> float:
        """The peak so far, for intermediate reports while the block is still running."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / _MIB
        return self._peak_bytes / _MIB

    def _sample(self, process: psutil.Process) -> None:
        while not self._stop.wait(self.interval_seconds):
            self._peak_bytes = max(self._peak_bytes, process.memory_info().rss)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / _MIB
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self._peak_bytes, psutil.Process().memory_info().rss) / _MIB
