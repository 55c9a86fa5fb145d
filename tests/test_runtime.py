"""runtime.progress: what a long job writes to its log while it runs."""

import logging

from ctpaper import runtime


def test_progress_logs_count_elapsed_and_eta(monkeypatch, caplog):
    clock = iter([0.0, 2.0, 4.0, 30.0, 40.0])  # start, then after items 1..4
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="ctpaper"):
        assert list(runtime.progress(range(4), "epoch", every=10.0)) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    # item 1 (first), item 2 skipped (2 s since the last line < 10 s), item 3 (26 s), item 4 (last)
    assert lines == [
        "progress epoch 1/4 (25%), elapsed 2.0 s, ETA 6.0 s",
        "progress epoch 3/4 (75%), elapsed 30.0 s, ETA 10.0 s",
        "progress epoch 4/4 (100%), elapsed 40.0 s, ETA 0.0 s",
    ]


def test_progress_counts_an_iterator_without_len(caplog):
    with caplog.at_level(logging.INFO, logger="ctpaper"):
        out = list(runtime.progress((x for x in "abc"), "run", every=0.0))
    assert out == ["a", "b", "c"]
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "progress run 1/3 (33%)", "progress run 2/3 (67%)", "progress run 3/3 (100%)"]
