"""Seeds, devices, versions and peak memory: what makes a run repeatable and reportable."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
from importlib import metadata

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """The requested device is not available on this machine."""


def pick_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device must be available."""
    if name not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; valid devices: {', '.join(DEVICES)}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' requested but CUDA is not available; use --device cpu")
    if name == "mps" and not has_mps:
        raise DeviceError("device 'mps' requested but MPS is not available; use --device cpu")
    return torch.device(name)


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages a result depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("mlatlas", "torch", "numpy", "scikit-learn", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["torch_threads"] = str(torch.get_num_threads())
    return out


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Peak resident memory while the block runs, sampled every `interval` seconds.

    `ru_maxrss` would give the peak of the whole process, including earlier labs; sampling
    /proc/self/statm gives this block's own peak. Falls back to ru_maxrss off Linux.
    On CUDA the peak allocated by PyTorch is tracked as well.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_cuda = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        if _rss_bytes() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            rss = _rss_bytes()
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)
        else:
            self.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if torch.cuda.is_available():
            self.peak_cuda = torch.cuda.max_memory_allocated()

    def as_dict(self) -> dict[str, float]:
        out = {"peak_rss_mb": round(self.peak_rss / 2**20, 1)}
        if self.peak_cuda:
            out["peak_cuda_mb"] = round(self.peak_cuda / 2**20, 1)
        return out


def _malloc_trim():
    if sys.platform != "linux":
        return None
    try:
        import ctypes
        import ctypes.util

        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_TRIM = _malloc_trim()


def release_heap() -> None:
    """Return freed heap memory to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    Why: a batched ensemble's step allocates and frees large temporaries; small long-lived
    blocks allocated between them keep glibc from shrinking the heap, so resident memory
    can grow by megabytes per step. `fit` calls this every 20 ensemble steps; it costs no
    measurable time.
    """
    if _TRIM is not None:
        _TRIM(0)
