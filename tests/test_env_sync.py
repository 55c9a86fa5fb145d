"""The pip pins (requirements.txt), the conda description (environment.yml) and the torch constraint agree."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, ver = line.partition("==")
        assert sep, f"unpinned requirement: {line!r}"
        out[name.strip().lower().replace("_", "-")] = ver.strip()
    return out


def requirements():
    return _pins((ROOT / "requirements.txt").read_text().splitlines())


def conda_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_block)


def test_environment_yml_matches_requirements():
    assert conda_pins() == requirements()


def test_torch_is_pinned_to_the_cpu_release_everywhere():
    assert requirements()["torch"] == "2.13.0"
    assert _pins((ROOT / "constraints.txt").read_text().splitlines()) == {"torch": "2.13.0"}
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()


def test_installed_torch_is_the_cpu_build_without_cuda_packages():
    from importlib.metadata import distributions

    import torch

    assert torch.__version__.startswith("2.13.0")
    assert not torch.version.cuda, "a CUDA build of torch is installed"
    cuda = sorted(d.metadata["Name"] for d in distributions()
                  if d.metadata["Name"] and d.metadata["Name"].lower().startswith("nvidia"))
    assert not cuda, f"CUDA packages were pulled in: {cuda}"


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in requirements().items():
        assert version(name).split("+")[0] == pinned, name


def test_rule_environments_match_requirements():
    """Every conda environment the rules name (workflow/envs/*.yaml, `snakemake --use-conda`) pins
    exactly the packages and versions of requirements.txt and environment.yml."""
    envs = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))
    assert envs, "no rule environment under workflow/envs/"
    named = set()
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        named |= set(re.findall(r'^\s+conda:\s*\n\s+"\.\./envs/([\w.-]+)"', rules.read_text(), re.M))
    assert named == {p.name for p in envs}, (named, [p.name for p in envs])
    for path in envs:
        env = yaml.safe_load(path.read_text())
        pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        assert _pins(pip_block) == requirements(), f"{path.relative_to(ROOT)} differs from requirements.txt"
        python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
        assert python == [d for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
                          if isinstance(d, str) and d.startswith("python")]
