"""Raw-file acquisition: search order, checksum verification, download, manifests, error messages."""

import hashlib
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from ctpaper.data import registry
from ctpaper.data.raw import (MIRROR_ENV, Locations, RawDataError, fetch_dataset, locate,
                              read_verified)
from ctpaper.data.registry import RawFile

CONTENT = b"a,b\n1,2\n"
SHA = hashlib.sha256(CONTENT).hexdigest()
ADULT_SHA = registry.get("adult").raw_files[0].sha256


def toy(urls=(), member=None) -> RawFile:
    return RawFile("toy", "toy.csv", SHA, urls=tuple(urls), member=member, obtain="ask the toy maker")


def put(root: Path, data: bytes, rel: str = "toy/toy.csv") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def dirs(tmp_path):
    project, mirror = tmp_path / "project", tmp_path / "mirror"
    project.mkdir()
    mirror.mkdir()
    return project, mirror


def test_project_copy_wins(dirs):
    project, mirror = dirs
    put(project, CONTENT)
    put(mirror, CONTENT)
    path, source = locate(toy(), Locations(project, mirror, download=False))
    assert (path, source) == (project / "toy/toy.csv", "project")


def test_mirror_used_when_project_lacks_the_file(dirs):
    project, mirror = dirs
    put(mirror, CONTENT)
    path, source = locate(toy(), Locations(project, mirror, download=False))
    assert (path, source) == (mirror / "toy/toy.csv", "mirror")


def test_checksum_mismatch_names_file_and_both_checksums(dirs):
    project, mirror = dirs
    put(mirror, CONTENT + b"corrupt")
    actual = hashlib.sha256(CONTENT + b"corrupt").hexdigest()
    with pytest.raises(RawDataError) as err:
        locate(toy(), Locations(project, mirror, download=False))
    msg = str(err.value)
    assert "toy/toy.csv" in msg and SHA in msg and actual in msg
    assert "mismatch" in msg and str(mirror / "toy/toy.csv") in msg


def test_missing_file_offline_lists_every_place_searched(dirs):
    project, mirror = dirs
    with pytest.raises(RawDataError) as err:
        locate(toy(urls=["http://127.0.0.1:9/toy.csv"]), Locations(project, mirror, download=False))
    msg = str(err.value)
    assert str(project / "toy/toy.csv") in msg and str(mirror / "toy/toy.csv") in msg
    assert msg.count("not found") == 2
    assert "download: disabled (paths.download: false)" in msg
    assert "ask the toy maker" in msg and SHA in msg


def test_unconfigured_mirror_is_reported(dirs, monkeypatch):
    project, _ = dirs
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    where = Locations.from_config({"paths": {"raw_dir": str(project), "download": False}})
    assert where.mirror is None
    with pytest.raises(RawDataError, match=f"mirror: not configured .*{MIRROR_ENV}"):
        locate(toy(), where)


def test_config_mirror_overrides_env(dirs, monkeypatch):
    project, mirror = dirs
    monkeypatch.setenv(MIRROR_ENV, "/nonexistent/mirror")
    where = Locations.from_config({"paths": {"raw_dir": str(project), "raw_mirror": str(mirror)}})
    assert where.mirror == mirror.resolve() and where.download is True
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    assert Locations.from_config({"paths": {"raw_dir": str(project)}}).mirror == mirror.resolve()


def test_corrupt_project_file_falls_through_to_a_verified_mirror_copy(dirs):
    project, mirror = dirs
    bad = put(project, b"user data")
    put(mirror, CONTENT)
    path, source = locate(toy(), Locations(project, mirror, download=False))
    assert source == "mirror"
    assert bad.read_bytes() == b"user data"


def test_download_via_url_verifies_then_renames(dirs):
    project, mirror = dirs
    src = put(mirror.parent / "remote", CONTENT)
    path, source = locate(toy(urls=[src.as_uri()]), Locations(project, mirror, download=True))
    assert (path, source) == (project / "toy/toy.csv", "download")
    assert path.read_bytes() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.csv"]  # no temp files left


def test_corrupt_download_is_discarded_and_next_url_tried(dirs):
    project, mirror = dirs
    bad = put(mirror.parent / "remote", b"tampered", "bad.csv")
    good = put(mirror.parent / "remote", CONTENT, "good.csv")
    path, source = locate(toy(urls=[bad.as_uri(), good.as_uri()]), Locations(project, mirror, True))
    assert source == "download" and path.read_bytes() == CONTENT
    with pytest.raises(RawDataError) as err:
        locate(RawFile("toy", "other.csv", SHA, urls=(bad.as_uri(),)), Locations(project, mirror, True))
    assert "downloaded, sha256 mismatch" in str(err.value)
    assert not (project / "toy/other.csv").exists()
    assert sorted(p.name for p in (project / "toy").iterdir()) == ["toy.csv"]


def test_download_extracts_archive_member(dirs):
    project, mirror = dirs
    archive = mirror.parent / "bundle.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("Bundle/toy.csv")
        info.size = len(CONTENT)
        tar.addfile(info, io.BytesIO(CONTENT))
    raw = toy(urls=[archive.as_uri()], member="Bundle/toy.csv")
    path, source = locate(raw, Locations(project, mirror, download=True))
    assert source == "download" and path.read_bytes() == CONTENT
    with pytest.raises(RawDataError, match="no member Bundle/missing.csv"):
        locate(RawFile("toy", "x.csv", SHA, urls=(archive.as_uri(),), member="Bundle/missing.csv"),
               Locations(project, mirror, download=True))


def test_download_never_overwrites_a_mismatching_project_file(dirs):
    project, mirror = dirs
    bad = put(project, b"user data")
    src = put(mirror.parent / "remote", CONTENT)
    with pytest.raises(RawDataError, match="would overwrite"):
        locate(toy(urls=[src.as_uri()]), Locations(project, mirror, download=True))
    assert bad.read_bytes() == b"user data"


def test_unreachable_url_fails_quickly(dirs):
    project, mirror = dirs
    t0 = time.perf_counter()
    with pytest.raises(RawDataError, match="download failed"):
        locate(toy(urls=["http://127.0.0.1:9/toy.csv"]), Locations(project, mirror, True), timeout=3)
    assert time.perf_counter() - t0 < 10
    assert not (project / "toy").exists()  # a failed download leaves no empty data/raw/<dataset>/


def test_unreachable_host_is_tried_once(dirs):
    project, mirror = dirs
    unreachable: set[str] = set()
    where = Locations(project, mirror, download=True)
    with pytest.raises(RawDataError, match="download failed"):
        locate(toy(urls=["http://127.0.0.1:9/a.csv"]), where, timeout=3, unreachable=unreachable)
    assert unreachable == {"127.0.0.1:9"}
    with pytest.raises(RawDataError, match="skipped, 127.0.0.1:9 was unreachable"):
        locate(RawFile("toy", "b.csv", SHA, urls=("http://127.0.0.1:9/b.csv",)), where, 3, unreachable)


def test_fetch_dataset_writes_manifest(tmp_path, raw_mirror):
    config = {"paths": {"raw_dir": str(tmp_path / "raw"), "raw_mirror": str(raw_mirror),
                        "download": False}}
    manifest = tmp_path / "raw" / "mnist_manifest.json"
    fetch_dataset("mnist", config, manifest)
    entries = json.loads(manifest.read_text())
    assert set(entries) == {f.name for f in registry.get("mnist").raw_files}
    for raw in registry.get("mnist").raw_files:
        entry = entries[raw.name]
        assert entry == {"path": str(raw_mirror / raw.relpath), "sha256": raw.sha256, "source": "mirror"}
        assert Path(entry["path"]).is_absolute()


def test_fetch_dataset_reports_every_missing_file(tmp_path):
    config = {"paths": {"raw_dir": str(tmp_path / "raw"), "raw_mirror": str(tmp_path / "empty"),
                        "download": False}}
    manifest = tmp_path / "manifest.json"
    with pytest.raises(RawDataError) as err:
        fetch_dataset("mnist", config, manifest)
    for raw in registry.get("mnist").raw_files:
        assert raw.relpath in str(err.value)
    assert not manifest.exists()


def test_synthetic_datasets_have_nothing_to_fetch(tmp_path):
    with pytest.raises(RawDataError, match="no raw files"):
        fetch_dataset("ls", {"paths": {"raw_dir": str(tmp_path)}}, tmp_path / "m.json")
    assert read_verified("ls", None) == {}


def test_file_changed_after_fetching_is_never_used(tmp_path, raw_mirror):
    project = tmp_path / "raw"
    local = project / "adult" / "adult.data"
    local.parent.mkdir(parents=True)
    shutil.copyfile(raw_mirror / "adult" / "adult.data", local)
    manifest = tmp_path / "manifest.json"
    fetch_dataset("adult", {"paths": {"raw_dir": str(project), "download": False}}, manifest)
    assert json.loads(manifest.read_text())["adult.data"]["source"] == "project"
    assert read_verified("adult", manifest)["adult.data"] == local.read_bytes()
    with open(local, "ab") as fh:
        fh.write(b"39, State-gov, 77516\n")
    with pytest.raises(RawDataError) as err:
        read_verified("adult", manifest)
    msg = str(err.value)
    assert "adult/adult.data" in msg and "changed after it was fetched" in msg and ADULT_SHA in msg
