"""Acquisition of raw files: find a verified copy (project dir, mirror, download) and record it.

Every candidate is checked against the registry's sha256; a file with another checksum is never
used, and never overwritten by a download. When no verified copy is found, ``RawDataError`` names
the file, every place searched and what was found there, the expected checksum and how to get it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ctpaper.data.registry import RawFile, get
from ctpaper.runtime import UserError, read_json, sha256_file, write_json

MIRROR_ENV = "CTPAPER_RAW_MIRROR"
DOWNLOAD_TIMEOUT = 15.0  # seconds per connection attempt: offline runs fail fast
_CHUNK = 1 << 20

log = logging.getLogger("ctpaper.data")


class RawDataError(UserError, RuntimeError):
    """A raw file is missing, corrupt or changed; the message says what and how to fix it."""


@dataclass(frozen=True)
class Locations:
    """Where raw files are looked for, in order: project dir, mirror, then (optionally) download."""

    raw_dir: Path
    mirror: Path | None
    download: bool

    @classmethod
    def from_config(cls, config: dict) -> "Locations":
        paths = config.get("paths", {})
        mirror = paths.get("raw_mirror") or os.environ.get(MIRROR_ENV) or None
        return cls(raw_dir=Path(paths.get("raw_dir", "data/raw")).resolve(),
                   mirror=Path(mirror).resolve() if mirror else None,
                   download=bool(paths.get("download", True)))


def _check(path: Path, expected: str) -> tuple[bool, str]:
    """(usable, description) for a candidate path."""
    if not path.is_file():
        return False, "not found"
    try:
        actual = sha256_file(path)
    except OSError as err:
        return False, f"unreadable ({err.strerror or err})"
    if actual != expected:
        return False, f"sha256 mismatch: found {actual} (corrupt or a different version; not used)"
    return True, "verified"


class _HostUnreachable(Exception):
    """The server could not be reached at all (offline, DNS, refused, timed out)."""


def _download(raw: RawFile, url: str, dest: Path, timeout: float) -> str:
    """Download ``url`` (extracting ``raw.member`` from a tar.gz) to ``dest`` if it verifies.

    Writes to a temporary sibling first and renames only a verified file; returns a description
    ("verified" on success). Raises _HostUnreachable when no connection could be made.
    """
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    archive = dest.with_name(f".{dest.name}.archive-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, \
                open(archive if raw.member else part, "wb") as out:
            shutil.copyfileobj(resp, out, _CHUNK)
        if raw.member:
            with tarfile.open(archive, "r:gz") as tar, open(part, "wb") as out:
                member = tar.extractfile(raw.member)
                if member is None:
                    return f"{url}: archive member {raw.member} is not a file"
                shutil.copyfileobj(member, out, _CHUNK)
        actual = sha256_file(part)
        if actual != raw.sha256:
            return f"{url}: downloaded, sha256 mismatch: found {actual} (discarded)"
        os.replace(part, dest)
        return "verified"
    except KeyError:
        return f"{url}: archive has no member {raw.member}"
    except urllib.error.HTTPError as err:
        return f"{url}: download failed (HTTP {err.code} {err.reason})"
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise _HostUnreachable(f"{url}: download failed ({getattr(err, 'reason', None) or err})") from None
    except (OSError, ValueError, http.client.HTTPException, tarfile.TarError) as err:
        return f"{url}: download failed ({err})"
    finally:
        for tmp in (part, archive):
            if tmp.exists():
                tmp.unlink()
        if not dest.exists():  # a failed download leaves no empty data/raw/<dataset>/ behind
            for d in created:  # deepest first
                with contextlib.suppress(OSError):
                    d.rmdir()


def locate(raw: RawFile, where: Locations, timeout: float = DOWNLOAD_TIMEOUT,
           unreachable: set[str] | None = None) -> tuple[Path, str]:
    """Return (path, source) of a verified copy of ``raw``; raise RawDataError otherwise.

    ``unreachable`` collects hosts that could not be reached, so that an offline run tries each
    host once (and waits at most ``timeout`` for it) rather than once per file.
    """
    unreachable = set() if unreachable is None else unreachable
    searched: list[str] = []
    project = where.raw_dir / raw.dataset_dir / raw.name
    ok, what = _check(project, raw.sha256)
    if ok:
        return project, "project"
    searched.append(f"project dir (paths.raw_dir) {project}: {what}")
    project_blocked = project.exists()
    if project_blocked:
        log.warning("%s: %s", raw.relpath, searched[-1])

    if where.mirror is None:
        searched.append(f"mirror: not configured (paths.raw_mirror or env {MIRROR_ENV})")
    else:
        mirrored = where.mirror / raw.dataset_dir / raw.name
        ok, what = _check(mirrored, raw.sha256)
        if ok:
            return mirrored, "mirror"
        searched.append(f"mirror {mirrored}: {what}")
        if mirrored.exists():
            log.warning("%s: %s", raw.relpath, searched[-1])

    if not where.download:
        searched.append("download: disabled (paths.download: false)")
    elif not raw.urls:
        searched.append("download: no direct-download URL for this file (see how to obtain it)")
    elif project_blocked:
        searched.append(f"download: not attempted, it would overwrite {project}; move that file away")
    else:
        for url in raw.urls:
            host = urllib.parse.urlsplit(url).netloc
            if host and host in unreachable:
                searched.append(f"download {url}: skipped, {host} was unreachable moments ago")
                continue
            log.info("downloading %s from %s", raw.relpath, url)
            try:
                what = _download(raw, url, project, timeout)
            except _HostUnreachable as err:
                unreachable.add(host)
                what = str(err)
            if what == "verified":
                return project, "download"
            searched.append(f"download {what}")

    raise RawDataError(
        f"raw file {raw.relpath} is not available with the expected checksum\n"
        f"  expected sha256: {raw.sha256}\n"
        "  places searched:\n    " + "\n    ".join(searched) + "\n"
        f"  how to obtain it: {raw.obtain}; put it at {project}, "
        f"or point paths.raw_mirror / {MIRROR_ENV} at a directory holding {raw.relpath}")


def fetch_dataset(dataset: str, config: dict, manifest_path: str | Path,
                  timeout: float = DOWNLOAD_TIMEOUT) -> dict:
    """Locate and verify every raw file of ``dataset``; write the manifest (name -> path, sha256, source).

    All files are tried before failing, so one error lists every missing file.
    """
    spec = get(dataset)
    if not spec.raw_files:
        raise RawDataError(f"dataset {dataset!r} is generated ({spec.kind}); it has no raw files")
    where = Locations.from_config(config)
    unreachable: set[str] = set()
    manifest: dict[str, dict] = {}
    errors: list[str] = []
    for raw in spec.raw_files:
        try:
            path, source = locate(raw, where, timeout, unreachable)
        except RawDataError as err:
            errors.append(str(err))
            continue
        log.info("%s: %s copy %s (sha256 %s)", raw.relpath, source, path, raw.sha256)
        manifest[raw.name] = {"path": str(path), "sha256": raw.sha256, "source": source}
    if errors:
        raise RawDataError("\n".join(errors))
    write_json(manifest, manifest_path)
    return manifest


def read_verified(dataset: str, manifest_path: str | Path | None) -> dict[str, bytes]:
    """The bytes of every raw file of ``dataset``, re-verified against the registry checksum.

    The bytes that are hashed are the bytes that get parsed, so a file changed after fetching is
    never used.
    """
    spec = get(dataset)
    if not spec.raw_files:
        return {}
    if manifest_path is None:
        raise RawDataError(f"dataset {dataset!r} needs its raw-file manifest (rule fetch_raw)")
    manifest = read_json(manifest_path)
    out: dict[str, bytes] = {}
    for raw in spec.raw_files:
        entry = manifest.get(raw.name)
        if entry is None:
            raise RawDataError(f"{manifest_path} has no entry for {raw.relpath}; re-run fetch_raw")
        path = Path(entry["path"])
        try:
            data = path.read_bytes()
        except OSError as err:
            raise RawDataError(f"raw file {raw.relpath} at {path} is unreadable ({err}); "
                               f"delete {manifest_path} and re-run fetch_raw") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != raw.sha256:
            raise RawDataError(
                f"raw file {raw.relpath} at {path} changed after it was fetched: sha256 {actual}, "
                f"expected {raw.sha256}; restore the file, or delete {manifest_path} and re-run "
                "fetch_raw to look for a verified copy")
        out[raw.name] = data
    return out


def raw_checksums(dataset: str) -> dict[str, str]:
    """{file name: sha256} of the raw files of ``dataset`` (recorded in meta.json)."""
    return {raw.name: raw.sha256 for raw in get(dataset).raw_files}
