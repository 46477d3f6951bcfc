"""Choosing a launch config for a generated kernel: per device, kernel source and shape bucket.

Where a config comes from, first match wins:
  1. this process's memory;
  2. a shipped tuned table, generated/<spec>/tuned/<device>.json (`kernelgen tune` writes them):
     used only when its device name and compute capability are this device's and the entry's
     kernel hash is the loaded kernel's; a bucket the table lacks takes its nearest tuned bucket;
  3. the on-disk cache, $KERNELGEN_CACHE_DIR or ~/.cache/kernelgen (XDG_CACHE_HOME honoured),
     keyed by device, triton version, kernel hash, row bucket and dtype;
  4. benchmarking every config of the spec's search space (never under the Triton interpreter,
     never during CUDA graph capture), then saving the winner to the cache.
Under the interpreter, or with $KERNELGEN_AUTOTUNE=0, the spec's first config is used untuned.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

FORMAT_VERSION = 1
ENV_CACHE_DIR = "KERNELGEN_CACHE_DIR"
ENV_AUTOTUNE = "KERNELGEN_AUTOTUNE"
CACHE_FILE = f"tune-v{FORMAT_VERSION}.json"


class TuningDuringCapture(RuntimeError):
    """A launch needed tuning while a CUDA graph was being captured."""


@dataclass(frozen=True)
class LaunchConfig:
    block_rows: int
    num_warps: int
    num_stages: int

    @classmethod
    def of(cls, config) -> "LaunchConfig":  # a triton.Config
        return cls(config.kwargs["BLOCK_ROWS"], config.num_warps, config.num_stages)

    def as_dict(self) -> dict[str, int]:
        return {"block_rows": self.block_rows, "num_warps": self.num_warps, "num_stages": self.num_stages}


@dataclass(frozen=True)
class KernelId:
    """One generated kernel: its name and the sha256 of the module that defines it."""
    name: str
    module_sha256: str

    def __str__(self) -> str:
        return f"{self.name}@{self.module_sha256[:16]}"


def device_name(device: torch.device) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor')."""
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


def device_slug(name: str, capability: str) -> str:
    """File name of a device's tuned table: 'nvidia-h100-80gb-hbm3-sm90'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + "-sm" + capability.replace(".", "")


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kernelgen"


def default_benchmark(fn: Callable[[], None]) -> float:
    """Median milliseconds of fn on the GPU (triton.testing.do_bench, events)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=2, rep=10, return_mode="median")


def _read_json(path: Path, what: str, warn: bool = True) -> dict | None:
    """A format-1 JSON object, or None (with one warning) when missing, corrupt or foreign."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION \
                or not isinstance(data.get("entries"), dict):
            raise ValueError(f"not a format-{FORMAT_VERSION} kernelgen file")
        return data
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        if warn:
            warnings.warn(f"kernelgen: ignoring {what} {path}: {exc}", RuntimeWarning, stacklevel=4)
        return None


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TuneCache:
    """The on-disk cache of tuned configs: one JSON file, merged under a lock, replaced atomically.
    An unwritable folder degrades to memory with one warning."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else cache_dir()
        self.path = self.folder / CACHE_FILE
        self._entries: dict[str, dict] | None = None
        self._writable = True

    def entries(self) -> dict[str, dict]:
        if self._entries is None:
            data = _read_json(self.path, "tuning cache")
            self._entries = dict(data["entries"]) if data else {}
        return self._entries

    def get(self, key: str) -> dict | None:
        return self.entries().get(key)

    def put(self, key: str, config: dict) -> None:
        self.entries()[key] = config
        if not self._writable:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with _file_lock(self.folder / (CACHE_FILE + ".lock")):
                # other processes' results; a broken file was reported when first read and is replaced
                on_disk = _read_json(self.path, "tuning cache", warn=False)
                merged = dict(on_disk["entries"]) if on_disk else {}
                merged.update(self._entries)
                write_json_atomic(self.path, {"format_version": FORMAT_VERSION, "entries": merged})
                self._entries = merged
        except OSError as exc:
            self._writable = False
            warnings.warn(f"kernelgen: cannot write the tuning cache in {self.folder} ({exc.strerror or exc}); "
                          f"keeping tuned configs in memory only (set ${ENV_CACHE_DIR} to a writable folder)",
                          RuntimeWarning, stacklevel=3)


def load_table(folder: Path, name: str, capability: str) -> dict[str, dict]:
    """Entries of a spec folder's shipped table for this device, or {} if it has none or it is foreign."""
    path = folder / "tuned" / f"{device_slug(name, capability)}.json"
    data = _read_json(path, "tuned table")
    if not data:
        return {}
    if data.get("device") != name or data.get("capability") != capability:
        warnings.warn(f"kernelgen: ignoring tuned table {path}: made on {data.get('device')} "
                      f"(sm {data.get('capability')}), this is {name} (sm {capability})",
                      RuntimeWarning, stacklevel=3)
        return {}
    return data["entries"]


def table_key(kernel: KernelId, bucket: int, dtype: str) -> str:
    return f"{kernel.name}|{kernel.module_sha256}|{bucket}|{dtype}"


def merge_table(path: Path, name: str, capability: str, entries: dict[str, dict],
                current: set[tuple[str, str]], command: str) -> int:
    """Add `entries` (table_key -> config) to the tuned table at `path` for device (name, capability),
    replacing the file atomically. Entries of kernels no longer current ((kernel name, module sha256)
    not in `current`) and a table of another device are dropped. Returns the number of entries."""
    import triton

    old = _read_json(path, "tuned table")
    kept = old["entries"] if old and old.get("device") == name else {}
    merged = {key: config for key, config in kept.items() if tuple(key.split("|")[:2]) in current}
    merged.update(entries)
    write_json_atomic(path, {"format_version": FORMAT_VERSION, "device": name, "capability": capability,
                             "triton": triton.__version__, "command": command, "entries": merged})
    return len(merged)


class Tuner:
    """Picks and remembers launch configs. `benchmark(fn) -> ms` is replaceable (tests use fakes)."""

    def __init__(self, cache: TuneCache | None = None, benchmark: Callable | None = None):
        self._cache = cache
        self.benchmark = benchmark
        self.benchmark_calls = 0
        self._chosen: dict[tuple, LaunchConfig] = {}
        self._tables: dict[tuple, dict] = {}
        self._lock = threading.Lock()

    @property
    def cache(self) -> TuneCache:
        if self._cache is None:
            self._cache = TuneCache()
        return self._cache

    def enabled(self, interpreted: bool) -> bool:
        if os.environ.get(ENV_AUTOTUNE, "1") == "0":
            return False
        return self.benchmark is not None or not interpreted

    def _device(self, device: torch.device) -> tuple[str, str]:
        return device_name(device) if device.type == "cuda" else ("cpu", "0.0")

    def cache_key(self, kernel: KernelId, bucket: int, dtype: str, device: torch.device) -> str:
        import triton

        name, capability = self._device(device)
        return f"{name}|sm{capability}|triton {triton.__version__}|{kernel}|{bucket}|{dtype}"

    def source(self, folder: Path, kernel: KernelId, bucket: int, dtype: str, device: torch.device) -> str | None:
        """Where a tuned config would come from: 'table', 'cache' or None (not yet tuned)."""
        if self._table_entry(folder, kernel, bucket, dtype, device):
            return "table"
        if self.cache.get(self.cache_key(kernel, bucket, dtype, device)):
            return "cache"
        return None

    def _table_entry(self, folder, kernel, bucket, dtype, device) -> dict | None:
        """The table's config for this bucket, or for the nearest bucket it has (log2 distance, ties to
        the larger): a table tunes a few row counts and covers every bucket, so nothing tunes at run time."""
        name, capability = self._device(device)
        tkey = (folder, name, capability)
        if tkey not in self._tables:
            by_kernel: dict[tuple, dict[int, dict]] = {}
            for key, config in load_table(folder, name, capability).items():
                parts = key.split("|")
                if len(parts) == 4 and parts[2].isdigit() and isinstance(config, dict):
                    by_kernel.setdefault((parts[0], parts[1], parts[3]), {})[int(parts[2])] = config
            self._tables[tkey] = by_kernel
        tuned = self._tables[tkey].get((kernel.name, kernel.module_sha256, dtype))
        if not tuned:
            return None
        nearest = min(tuned, key=lambda b: (abs(b.bit_length() - bucket.bit_length()), -b))
        return tuned[nearest]

    def choose(self, folder: Path, kernel: KernelId, configs: list, bucket: int, dtype: str,
               device: torch.device, interpreted: bool, run: Callable[[LaunchConfig], None]) -> LaunchConfig:
        memo = (kernel, bucket, dtype, device)
        chosen = self._chosen.get(memo)
        if chosen is not None:
            return chosen
        with self._lock:
            chosen = self._choose(folder, kernel, configs, bucket, dtype, device, interpreted, run)
            self._chosen[memo] = chosen
        return chosen

    def _choose(self, folder, kernel, configs, bucket, dtype, device, interpreted, run) -> LaunchConfig:
        space = [LaunchConfig.of(c) for c in configs]
        if not self.enabled(interpreted) or len(space) == 1:
            return space[0]
        for found in (self._table_entry(folder, kernel, bucket, dtype, device),
                      self.cache.get(self.cache_key(kernel, bucket, dtype, device))):
            if found:
                try:
                    config = LaunchConfig(**found)
                except TypeError:
                    continue
                if config in space:  # a config outside the spec's search space is not applied
                    return config
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise TuningDuringCapture(
                f"kernelgen: {kernel.name} has no tuned config for {bucket}-row bucket, {dtype}, on this device, "
                "and tuning cannot run while a CUDA graph is captured: call Quantizer.warmup(max_rows=...) "
                "before capturing")
        best = self.tune(kernel, space, run)
        self.cache.put(self.cache_key(kernel, bucket, dtype, device), best.as_dict())
        return best

    def tune(self, kernel: KernelId, space: list[LaunchConfig], run: Callable[[LaunchConfig], None]) -> LaunchConfig:
        """Benchmark every config (a config that fails to compile or launch is skipped)."""
        benchmark = self.benchmark or default_benchmark
        timings = []
        for config in space:
            try:
                self.benchmark_calls += 1
                timings.append((benchmark(lambda c=config: run(c)), space.index(config), config))
            except Exception as exc:  # out of shared memory or registers: not a candidate
                if type(exc).__name__ not in ("OutOfResources", "CompilationError", "PTXASError"):
                    raise
        if not timings:
            raise RuntimeError(f"kernelgen: no config of {kernel.name} could run on this device")
        return min(timings)[2]


TUNER = Tuner()
