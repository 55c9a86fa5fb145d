"""The command line's config files checked before Snakemake reads them.

Snakemake's CLI loads every ``--configfile`` before the workflow's code runs, and reports a missing
file with a Python traceback and a YAML error without file or line. The workflow profile
(profiles/default/config.yaml, which Snakemake loads on every run from the project directory)
calls :func:`check_command_line` while Snakemake parses its options, so a missing file, a YAML syntax
error and a config that fails the schema end the run with one line naming the file (and line, or
the key) instead. The Snakefile validates again (the same checks, :func:`describe`), so nothing is
lost when the profile is not used.

Light on purpose (no torch, numpy or matplotlib): it runs on every Snakemake invocation.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from ctpaper.config import ConfigError, deep_merge, read_yaml, validate

# The Snakefile's `configfile:` directive; Snakemake looks for it in the working directory
# (--directory) and uses it as the base that --configfile files and --config values overwrite.
WORKFLOW_CONFIGFILE = "config/config.yaml"
_KEY = re.compile(r"config key (\S+?):")
_MISSING = object()


def key_source(key: str, sources: Sequence[tuple[str, dict]]) -> str | None:
    """The last of ``sources`` ((label, mapping) in merge order) that sets dotted ``key`` (for a
    section: any key in it), i.e. the file or --config whose value the merged config holds; None if
    no source sets it (a list index such as ``datasets.1`` counts as its list's key)."""
    found = None
    for label, data in sources:
        node: Any = data
        for part in key.split("."):
            if isinstance(node, list) and part.isdigit():
                break
            if not isinstance(node, dict) or part not in node:
                node = _MISSING
                break
            node = node[part]
        if node is not _MISSING:
            found = label
    return found


def describe(err: ConfigError, sources: Sequence[tuple[str, dict]]) -> str:
    """``err``'s message on one line (one clause per bad key, each ending with the source that set
    the key)."""
    out = []
    for line in str(err).splitlines():
        line = line.strip()
        if not line or line == "invalid configuration:":
            continue
        key = _KEY.search(line)
        where = key_source(key.group(1), sources) if key else None
        out.append(f"{line} (set in {where})" if where else line)
    return "; ".join(out)


def config_sources(base: str | Path | None, files: Iterable[str | Path],
                   overrides: dict | None = None) -> list[tuple[str, dict]]:
    """(label, mapping) of every config source in Snakemake's merge order: the workflow's config
    file (if used), each --configfile, then the --config values. ConfigError (naming the file and
    line) for a file that is missing or not valid YAML."""
    sources = [(str(base), read_yaml(base))] if base is not None else []
    sources += [(str(f), read_yaml(f)) for f in files]
    if overrides:
        sources.append(("--config", dict(overrides)))
    return sources


def check_sources(sources: Sequence[tuple[str, dict]]) -> None:
    """Validate the merged ``sources``; ConfigError whose one-line message names each bad key and
    the source that set it."""
    merged: dict = {}
    for _, data in sources:
        merged = deep_merge(merged, data)
    try:
        validate(merged)
    except ConfigError as err:
        raise ConfigError(describe(err, sources)) from None


def _command_line(argv: Sequence[str]):
    """Snakemake's own reading of ``argv`` (options given in profiles aside), or None when it is
    not a run with config files or values (or not parseable: Snakemake then says why itself)."""
    from snakemake.cli import get_argument_parser, parse_config

    try:
        args, _ = get_argument_parser().parse_known_args(list(argv))
        overrides = parse_config(args.config)
    except (SystemExit, Exception):  # --help, --version, bad syntax: Snakemake reports it
        return None
    if not (args.configfile or overrides):
        return None
    return args, overrides


def check_command_line(argv: Sequence[str] | None = None) -> None:
    """Check the config files and values of a Snakemake command line (default: this process's) the
    way the workflow merges them; on a problem print one line naming the file and exit 1."""
    parsed = _command_line(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        return
    args, overrides = parsed
    base = Path(args.directory or ".") / WORKFLOW_CONFIGFILE
    use_base = base.is_file() and not args.replace_workflow_config
    try:
        check_sources(config_sources(base if use_base else None, args.configfile, overrides))
    except ConfigError as err:
        print(f"ctpaper: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def describe_workflow_error(err: ConfigError, configfiles: Sequence, cli_configfiles: Sequence,
                            overrides: dict | None) -> str:
    """The Snakefile's message for a config that fails validation: ``err`` with every key followed
    by the source that set it. ``configfiles``/``cli_configfiles``/``overrides`` are the workflow's
    ``configfiles``, ``overwrite_configfiles`` and ``config_settings.config``. Falls back to the
    plain message when a source cannot be re-read (e.g. a relative path after --directory)."""
    cli = [str(f) for f in cli_configfiles]
    base = [str(f) for f in configfiles if str(f) not in cli]
    try:
        sources = config_sources(base[0] if base else None, cli, overrides)
    except ConfigError:
        return str(err)
    return describe(err, sources)
