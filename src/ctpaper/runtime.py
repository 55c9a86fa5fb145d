"""What every rule script needs: logging to the rule's log, torch threads, provenance, atomic
writes with a recorded checksum, and verified reads.

Every intermediate is written through ``atomic_path`` (``write_json``, ``write_parquet``,
``save_model``, figures, tables), which records the file's sha256 beside it (``<file>.sha256``).
Readers go through ``read_parquet`` / ``read_json`` / ``read_csv`` / ``verified``: a file whose
bytes no longer match, or that cannot be parsed, raises ``IntegrityError`` naming the file and
saying to delete it and rerun, so a corrupt or truncated intermediate is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

log = logging.getLogger("ctpaper")
_CHUNK = 1 << 20


class UserError(Exception):
    """A problem the user can fix (bad setting, corrupt file, diverged training): rule scripts
    report its message without a traceback."""


class IntegrityError(UserError):
    """An intermediate file that is corrupt, truncated or was changed after it was written."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksum_path(path: str | Path) -> Path:
    """Where the sha256 of ``path`` is recorded: ``<path>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _rebuild_hint(path: Path) -> str:
    return f"delete it (rm '{path}') and rerun snakemake, which rebuilds it"


def verified(path: str | Path) -> Path:
    """``path``, after checking its bytes against the sha256 recorded when it was written.

    Files without a recorded checksum (written outside the pipeline) are only checked by parsing.
    """
    path = Path(path)
    sidecar = checksum_path(path)
    if not path.is_file():
        raise IntegrityError(f"{path}: file not found; rerun snakemake to rebuild it")
    if sidecar.is_file():
        expected = (sidecar.read_text().split() or [""])[0]
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(f"{path}: corrupt (sha256 {actual[:12]}... differs from "
                                 f"{expected[:12] or 'nothing'}... recorded in {sidecar.name} when "
                                 f"it was written); {_rebuild_hint(path)}")
    return path


def _parse(path: str | Path, reader, what: str):
    path = verified(path)
    try:
        return reader(path)
    except (UserError, MemoryError):
        raise
    except Exception as err:  # any parser failure means the file is unusable
        raise IntegrityError(f"{path}: cannot be read as {what} ({type(err).__name__}: "
                             f"{str(err)[:200]}); the file is corrupt or truncated: "
                             f"{_rebuild_hint(path)}") from None


def read_parquet(path: str | Path, **kwargs):
    """``pandas.read_parquet`` of a verified file (see module docstring)."""
    import pandas as pd

    return _parse(path, lambda p: pd.read_parquet(p, **kwargs), "Parquet")


def read_csv(path: str | Path, **kwargs):
    """``pandas.read_csv`` of a verified file."""
    import pandas as pd

    return _parse(path, lambda p: pd.read_csv(p, **kwargs), "CSV")


def read_json(path: str | Path):
    """The parsed JSON of a verified file."""
    return _parse(path, lambda p: json.loads(p.read_text()), "JSON")


def read_torch(path: str | Path):
    """``torch.load(weights_only=True)`` of a verified file (a model or VAE)."""
    import torch

    return _parse(path, lambda p: torch.load(p, map_location="cpu", weights_only=True),
                  "a torch file")

T = TypeVar("T")


def set_threads(n: int) -> None:
    """Make torch (and BLAS) use exactly ``n`` threads, the number the rule was given."""
    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def job_info() -> dict:
    """Where this job runs: host, pid and the SLURM job id when under SLURM."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def git_commit(root: Path | None = None) -> str | None:
    """The checked-out commit of the project, or None outside a git checkout."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def package_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of the packages that shape the numbers (and of ``extra``); "absent" if missing."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "matplotlib",
                 "seaborn", "captum", "snakemake", *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


@contextlib.contextmanager
def rule_context(smk) -> Iterator[logging.Logger]:
    """Run a rule script body: log to the rule's log file, set threads, record where the job ran.

    ``smk`` is the ``snakemake`` object of a script directive. The first log line records the
    SLURM job id (``slurm_job_id=...``) so that cluster runs can be audited. ``smk.config`` is
    replaced by the keys the rule declares in ``ctpaper.config_reads`` (the same keys its params
    hash; for a job with a ``variant`` wildcard, of the variant's config), so reading an undeclared key fails the job instead of going unnoticed by reruns.
    """
    from ctpaper.config_reads import declared_view

    wildcards = dict(smk.wildcards)
    if "variant" in wildcards:  # a stage run under a study variant (ctpaper.studies.variants)
        from ctpaper.studies.variants import variant_config

        smk.config = variant_config(smk.config, wildcards["variant"])
    smk.config = declared_view(smk.config, smk.rule, wildcards)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if len(smk.log):
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_threads(smk.threads)
    info = job_info()
    log.info("rule=%s wildcards=%s threads=%s slurm_job_id=%s host=%s", smk.rule,
             dict(smk.wildcards), smk.threads, info["slurm_job_id"] or "none", info["host"])
    t0 = time.perf_counter()
    try:
        yield log
    except UserError as err:
        # a message, not a traceback: the user fixes a setting or deletes a file
        log.error("rule %s failed: %s", smk.rule, err)
        raise SystemExit(1) from None
    except Exception:
        log.exception("rule %s failed", smk.rule)
        raise
    log.info("rule=%s done in %.1f s", smk.rule, time.perf_counter() - t0)


def progress(items: Iterable[T], what: str, n: int | None = None, every: float = 10.0) -> Iterator[T]:
    """Yield ``items`` and log ``progress <what> i/n (p%), elapsed s, ETA s`` after an item's work is
    done: after the first and the last item and at most every ``every`` seconds in between, so that
    ``tail -f`` on a job's log shows where a long job is. ETA = elapsed / i * (n - i)."""
    if n is None:
        items = list(items)
        n = len(items)
    t0 = last = time.perf_counter()
    for i, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if i == 1 or i == n or now - last >= every:
            elapsed = now - t0
            log.info("progress %s %d/%d (%.0f%%), elapsed %.1f s, ETA %.1f s", what, i, n,
                     100.0 * i / n, elapsed, elapsed / i * (n - i))
            last = now


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds, and
    record its sha256 beside it (``checksum_path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    sidecar = checksum_path(path)
    tmp_sum = sidecar.with_name(f".{sidecar.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        tmp_sum.write_text(f"{sha256_file(tmp)}  {path.name}\n")
        os.replace(tmp, path)
        os.replace(tmp_sum, sidecar)
    finally:
        for t in (tmp, tmp_sum):
            if t.exists():
                t.unlink()


def write_json(obj, path: str | Path) -> None:
    """Write ``obj`` as sorted, indented JSON atomically (byte-stable for equal inputs)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _unshared(obj):
    """A copy of ``obj`` (nested dicts, lists, tuples, strings, scalars, tensors) in which no string
    or container object occurs twice, except the ones Python itself keeps unique by value (the empty
    and the one-character strings, the empty tuple). Pickle memoises by object identity, so equal
    contents then pickle to equal bytes, however the caller built them."""
    if isinstance(obj, str):
        return (obj + "_")[:-1]  # a new object unless the value is one Python keeps unique
    if isinstance(obj, dict):
        return {_unshared(k): _unshared(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unshared(v) for v in obj)
    return obj


def write_torch(obj, path: str | Path) -> None:
    """``torch.save`` ``obj`` (a dict of plain values and tensors) atomically, byte-stable for equal
    contents (``_unshared``: the bytes do not depend on which strings the caller's objects share)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(_unshared(obj), tmp)


def write_parquet(df, path: str | Path) -> None:
    """Write a DataFrame to Parquet atomically, without index, byte-stable for equal frames."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
