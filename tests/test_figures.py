"""Every figure module (method 8) from small synthetic inputs: the data drawn (read back from the
matplotlib artists) equals the inputs it comes from, and the PNG and PDF are written."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from ctpaper.data.io import write_frames
from ctpaper.figures import style
from ctpaper.models import build_model, model_spec, save_model

torch.set_num_threads(1)

SIDE = 28
D = SIDE * SIDE
PROTECTED = list(range(0, 140)) + list(range(644, 784))


def assert_image(png, pdf, min_shape=(100, 100)):
    import matplotlib.image as mpimg

    assert png.stat().st_size > 2000 and pdf.stat().st_size > 1000
    img = mpimg.imread(png)
    assert img.shape[0] >= min_shape[0] and img.shape[1] >= min_shape[1]
    assert float(np.std(img[..., :3])) > 0.01          # not a blank canvas
    assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.fixture
def small_config(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["figures"]["fig1"].update(n_train=120, n_epochs=4, nce=20, batch_size=30)
    cfg["figures"]["fig2"].update(T=20)
    cfg["figures"]["fig45"].update(T=5)
    return cfg


@pytest.fixture
def mnist_like(tmp_path):
    """A tiny prepared 'mnist' directory (6 test images per class) and two MLPs saved to disk."""
    rng = np.random.default_rng(0)
    names = [f"p{i}" for i in range(D)]

    def images(n_per):
        y = np.repeat(np.arange(10), n_per)
        X = rng.uniform(-1, 1, size=(len(y), D)).astype(np.float32)
        return X, y

    Xp, yp = images(3)
    Xt, yt = images(6)
    d = tmp_path / "mnist"
    d.mkdir()
    write_frames(Xp, yp, names, is_val=np.zeros(len(yp), bool)).to_parquet(d / "train.parquet")
    write_frames(Xt, yt, names).to_parquet(d / "test.parquet")
    meta = {"dataset": "mnist", "kind": "mnist", "feature_names": names, "classes": list(range(10)),
            "n_pool": len(yp), "n_train": len(yp), "n_val": 0, "n_test": len(yt),
            "bounds": {"lower": [-1.0] * D, "upper": [1.0] * D}, "protected": PROTECTED,
            "categorical_blocks": [], "image_shape": [SIDE, SIDE]}
    (d / "meta.json").write_text(json.dumps(meta))
    paths = {}
    for name, seed in (("bl", 1), ("ct", 2)):
        m = build_model("mlp", D, 10, seed=seed)
        with torch.no_grad():
            m.fc2.bias[0] += 20.0     # every image is predicted as 0 (Figure 2 needs one)
        p = tmp_path / f"{name}.pt"
        save_model(m, p, model_spec("mlp", D, 10, 32))
        paths[name] = p
    return d, paths


def test_fig1_small_run(small_config, tmp_path):
    from ctpaper.figures import fig1

    png, pdf = tmp_path / "fig1.png", tmp_path / "fig1.pdf"
    res = fig1.make(small_config, str(png), str(pdf))
    assert_image(png, pdf)
    assert list(res) == ["a", "b", "c", "d"]
    T = small_config["figures"]["fig1"]["T"]
    for key, r in res.items():
        assert r.paths.shape[1:] == (T + 1, 2)
        np.testing.assert_allclose(r.paths[:, -1], r.ces, atol=1e-5)
    # immutable feature 1 ("age") never moves in panels (c) and (d), and does move in (a)
    for key in ("c", "d"):
        r = res[key]
        assert np.allclose(r.paths[:, :, 1], r.paths[:, :1, 1])
    assert not np.allclose(res["a"].paths[:, :, 1], res["a"].paths[:, :1, 1])
    # BL is unaffected by its (plotting-only) CEs; CT differs from BL
    np.testing.assert_allclose(res["a"].weight, res["c"].weight)
    assert not np.allclose(res["a"].weight, res["b"].weight)


def test_fig1_boundary_segment():
    from ctpaper.figures.fig1 import boundary_segment

    w = np.array([[0.0, 0.0], [1.0, 2.0]])       # boundary x + 2 y + 1 = 0
    c = np.array([0.0, 1.0])
    xs, ys = boundary_segment(w, c, (-3, 3), (-5, 5))
    np.testing.assert_allclose(xs + 2 * ys + 1, 0, atol=1e-12)
    w = np.array([[0.0, 0.0], [1.0, 0.0]])       # vertical boundary x = -1
    xs, ys = boundary_segment(w, c, (-3, 3), (-5, 5))
    np.testing.assert_allclose(xs, [-1, -1])


def test_fig2_protected_rows_fixed_and_image(mnist_like, small_config, tmp_path):
    from ctpaper.figures import fig2

    d, paths = mnist_like
    maps = pd.concat([pd.DataFrame({"model": m, "class": np.repeat(np.arange(10), D),
                                    "pixel": np.tile(np.arange(D), 10),
                                    "attribution": np.random.default_rng(1).uniform(0, 1, 10 * D)})
                      for m in ("BL", "CT_protected")])
    ig = tmp_path / "ig_maps.parquet"
    maps.to_parquet(ig)
    png, pdf = tmp_path / "fig2.png", tmp_path / "fig2.pdf"
    res = fig2.make(str(d), {"BL": paths["bl"], "CT_protected": paths["ct"]}, str(ig), small_config,
                    str(png), str(pdf))
    assert_image(png, pdf)
    y_test = pd.read_parquet(d / "test.parquet")["y"].to_numpy()
    assert y_test[res["index"]] == 0
    for label in ("BL", "CT_protected"):
        ces = res["ces"][label]
        assert ces.shape == (4, D)
        np.testing.assert_array_equal(ces[:, PROTECTED], np.repeat(res["factual"][None, PROTECTED], 4, 0))
        assert ces.min() >= -1 and ces.max() <= 1
        assert not np.allclose(ces, res["factual"][None])   # mutable pixels did move
    # the panels show the factual, the four CEs (pixels mapped from [-1, 1] to [0, 1]) and the IG maps
    # of the classes 5-9 read from the attribution table, row BL then row CT
    fig = fig2.plot(res, maps)
    for r, label in enumerate(("BL", "CT_protected")):
        row = fig.axes[10 * r:10 * r + 10]
        shown = np.stack([ax.images[0].get_array() for ax in row[1:5]])[..., 0]   # grey: R = G = B
        np.testing.assert_allclose(shown, (res["ces"][label].reshape(4, SIDE, SIDE) + 1) / 2,
                                   atol=1e-6)
        table = maps[maps["model"] == label]
        for j, c in enumerate(range(5, 10)):
            want = table[table["class"] == c].sort_values("pixel")["attribution"].to_numpy()
            np.testing.assert_array_equal(row[5 + j].images[0].get_array().ravel(), want)


def test_fig2_ig_images_reject_wrong_size():
    from ctpaper.figures.fig2 import ig_images

    bad = pd.DataFrame({"model": "BL", "class": 5, "pixel": np.arange(10), "attribution": 0.5})
    with pytest.raises(ValueError, match="pixels"):
        ig_images(bad, "BL", classes=(5,))


def test_fig45_grid(mnist_like, small_config, tmp_path):
    from ctpaper.figures import fig45

    d, paths = mnist_like
    png, pdf = tmp_path / "fig4.png", tmp_path / "fig4.pdf"
    res = fig45.make("fig4", str(d), str(paths["ct"]), small_config, str(png), str(pdf))
    assert_image(png, pdf, min_shape=(500, 500))
    y_test = pd.read_parquet(d / "test.parquet")["y"].to_numpy()
    assert [int(y_test[i]) for i in res["indices"]] == list(range(10))
    grid = res["grid"]
    for i in range(10):
        np.testing.assert_array_equal(grid[i, i], res["factuals"][i])
    # each panel shows its grid cell: the factual tinted blue on the diagonal, the counterfactual
    # for target j in grey elsewhere, pixels mapped from [-1, 1] to [0, 1]
    fig = fig45.plot(res, "CT")
    shown = np.stack([ax.images[0].get_array() for ax in fig.axes]).reshape(10, 10, SIDE, SIDE, 3)
    unit = (grid.reshape(10, 10, SIDE, SIDE) + 1) / 2
    for i in range(10):
        for j in range(10):
            if i == j:
                np.testing.assert_allclose(shown[i, j] / np.array(style.TINT), unit[i, j][..., None]
                                           * np.ones(3), atol=1e-6)
            else:
                np.testing.assert_allclose(shown[i, j], np.repeat(unit[i, j][..., None], 3, -1),
                                           atol=1e-6)
    assert [ax.get_title() for ax in fig.axes[:10]] == [str(j) for j in range(10)]
    assert not np.allclose(grid[0, 1], res["factuals"][0])
    # the same factuals for Figure 5 (BL)
    res5 = fig45.make("fig5", str(d), str(paths["bl"]), small_config, str(tmp_path / "f5.png"),
                      str(tmp_path / "f5.pdf"))
    assert res5["indices"] == res["indices"]
    with pytest.raises(ValueError):
        fig45.make("fig6", str(d), str(paths["bl"]), small_config, "x.png", "x.pdf")


def test_fig3_robustness(tmp_path):
    from ctpaper.figures import fig3

    eps = np.linspace(0, 0.1, 4)
    paths = []
    for d in ("ls", "moon", "adult", "mnist"):
        rows = [{"dataset": d, "seed": 2025, "model": m, "eps": e,
                 "accuracy": 1 - e * (3 if m == "BL" else 1)} for m in ("BL", "CT") for e in eps]
        p = tmp_path / f"{d}.parquet"
        pd.DataFrame(rows).to_parquet(p)
        paths.append(p)
    png, pdf = tmp_path / "fig3.png", tmp_path / "fig3.pdf"
    df = fig3.make(paths, str(png), str(pdf))
    assert_image(png, pdf)
    assert set(df["model"]) == {"BL", "CT"} and len(df) == 32
    # the lines drawn are the input accuracies (1 - 3 eps for BL, 1 - eps for CT), one panel per
    # dataset in table order, no band with a single seed
    fig = fig3.plot(df)
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in axes] == ["LS", "Moon", "Adult", "MNIST"]
    for ax in axes:
        drawn = {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.lines}
        assert set(drawn) == {"BL", "CT"} and not ax.collections
        for model, slope in (("BL", 3), ("CT", 1)):
            np.testing.assert_allclose(drawn[model][0], eps)
            np.testing.assert_allclose(drawn[model][1], 1 - slope * eps)
    # two seeds: the line is their mean and the band their range
    two = pd.concat([df[df["dataset"] == "ls"].assign(seed=1),
                     df[df["dataset"] == "ls"].assign(seed=2, accuracy=lambda t: t["accuracy"] - 0.1)])
    (ax,) = [a for a in fig3.plot(two).axes if a.lines]
    bl = next(line for line in ax.lines if line.get_label() == "BL")
    np.testing.assert_allclose(bl.get_ydata(), 1 - 3 * eps - 0.05)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(1.0) and band[:, 1].min() == pytest.approx(0.6)


def test_maturity_curves(tmp_path):
    from ctpaper.figures import maturity

    paths = {}  # {(dataset, seed, model): path}; the path says nothing about them
    for d in ("ls", "adult"):
        for m in ("ct_free", "ct_protected"):
            p = tmp_path / f"log_{len(paths)}.parquet"
            pd.DataFrame({"epoch": np.arange(1, 6),
                          "prop_mature": np.linspace(0.2, 0.9, 5) * (0.8 if m == "ct_free" else 1)}
                         ).to_parquet(p)
            paths[(d, "2025", m)] = p
    png, pdf = tmp_path / "m.png", tmp_path / "m.pdf"
    df = maturity.make(paths, str(png), str(pdf))
    assert_image(png, pdf)
    assert set(df["dataset"]) == {"ls", "adult"} and set(df["model"]) == {"ct_free", "ct_protected"}
    # the curves drawn are the logged proportions; an epoch without counterfactuals (NaN) is skipped
    nan = df.copy()
    nan.loc[(nan["dataset"] == "adult") & (nan["epoch"] == 1), "prop_mature"] = np.nan
    axes = [ax for ax in maturity.plot(nan).axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["LS", "Adult"]
    for ax, first in zip(axes, (1, 2)):
        drawn = {line.get_label(): line for line in ax.lines}
        assert set(drawn) == {"CT (free)", "CT (protected)"}
        for label, scale in (("CT (free)", 0.8), ("CT (protected)", 1.0)):
            np.testing.assert_array_equal(drawn[label].get_xdata(), np.arange(first, 6))
            np.testing.assert_allclose(drawn[label].get_ydata(),
                                       (np.linspace(0.2, 0.9, 5) * scale)[first - 1:])
