"""config/published.yaml: the original's paper-text vs published settings, one entry per config key."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ctpaper import config as cfg
from ctpaper.paper import values

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "config" / "published.yaml"


def _at(tree: dict, key: str):
    for part in key.split("."):
        assert isinstance(tree, dict) and part in tree, f"{key}: no such key"
        tree = tree[part]
    return tree


def test_every_published_value_is_the_default_config():
    """The defaults reproduce the published results: each entry's published value is the value of
    config/config.yaml (as written there, before any overlay) at that key path."""
    with open(REPO / "config" / "config.yaml") as fh:
        raw = yaml.safe_load(fh)
    entries = values.load_published(PUBLISHED)
    assert len(entries) == 19
    for e in entries:
        assert set(e) == {"key", "note", "text", "published", "source"}, e
        value = _at(raw, e["key"])
        assert value == e["published"] and type(value) is type(e["published"]), e["key"]
        assert e["text"] != e["published"], f"{e['key']}: text and published agree, not a difference"
        assert e["source"].startswith("method 10."), e["key"]
    assert len({e["key"] for e in entries}) == len(entries)


def test_every_entry_is_a_schema_key_and_every_note_is_worded():
    """Each key is a documented setting of the schema, and the reproduction notes word the status of
    every note whose keys have a paper-text or published value to compare with (all but `protected`,
    whose note states the original's two sources in prose)."""
    schema = cfg.load_schema()

    def resolve(node):   # local '#/definitions/...' references
        while "$ref" in node and "properties" not in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return node

    entries = values.load_published(PUBLISHED)
    for e in entries:
        node = schema
        for part in e["key"].split("."):
            node = resolve(node)["properties"][part]
        assert "description" in node, e["key"]
    source = (REPO / "paper" / "sections" / "repro_notes.qmd").read_text()
    worded = set(re.findall(r'flags\.repro\.(\w+)\.published', source))
    assert worded == {e["note"] for e in entries} - {"protected"}
    for word in ("published", "text", "differs"):
        assert set(re.findall(rf'flags\.repro\.(\w+)\.{word}"', source)) == worded


def test_status_of_a_note_compares_all_its_keys(base_config):
    entries = values.load_published(PUBLISHED)
    status = values.published_values(base_config, entries)["repro"]
    assert all(s == {"published": True, "text": False, "differs": False} for s in status.values())
    half = {**base_config, "eval": {**base_config["eval"], "n_runs": 5}}   # text n_runs, published sizes
    assert values.published_values(half, entries)["repro"]["free_size"] == \
        {"published": False, "text": False, "differs": True}
    strict = {**base_config, "train": {**base_config["train"], "adv_eps_strict": True}}
    assert values.published_values(strict, entries)["repro"]["adv_eps"]["differs"]   # text: no value
