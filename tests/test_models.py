"""Models of method 3: architectures, seeded initialisation, save/load round trip."""

import math

import pytest
import torch

from ctpaper.models import LeNet, LinearModel, MLP, build_model, load_model, model_spec, save_model

torch.set_num_threads(1)


def test_mlp_architecture_and_shapes():
    m = build_model("mlp", 5, 3, hidden=32, seed=1)
    assert isinstance(m, MLP)
    assert m.fc1.weight.shape == (32, 5) and m.fc2.weight.shape == (3, 32)
    out = m(torch.randn(7, 5))
    assert out.shape == (7, 3)
    # ReLU between the layers: negative pre-activations do not contribute
    with torch.no_grad():
        m.fc1.weight.fill_(-1.0)
        m.fc1.bias.zero_()
    x = torch.ones(2, 5)
    assert torch.equal(m(x), m.fc2.bias.expand(2, 3))


def test_linear_and_lenet_shapes():
    lin = build_model("linear", 2, 2, seed=0)
    assert isinstance(lin, LinearModel) and lin.fc.weight.shape == (2, 2)
    le = build_model("lenet", 784, 10, seed=0)
    assert isinstance(le, LeNet)
    assert le(torch.randn(3, 784)).shape == (3, 10)
    with pytest.raises(ValueError):
        build_model("lenet", 100, 10)
    with pytest.raises(ValueError):
        build_model("cnn", 4, 2)


def test_xavier_zeros_init_bounds_and_zero_bias():
    m = build_model("mlp", 20, 4, hidden=32, init="xavier_zeros", seed=3)
    for layer in (m.fc1, m.fc2):
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = float(layer.weight.detach().abs().max())
        assert 0.8 * bound < w <= bound   # uniform over the full Glorot range
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_torch_default_init_bounds():
    m = build_model("mlp", 20, 4, hidden=32, init="torch_default", seed=3)
    bound = 1 / math.sqrt(20)
    with torch.no_grad():
        assert float(m.fc1.weight.abs().max()) <= bound
        assert 0 < float(m.fc1.bias.abs().max()) <= bound  # not zero, unlike xavier_zeros


def test_init_is_seeded_and_does_not_touch_global_rng():
    state = torch.get_rng_state()
    a = build_model("mlp", 6, 2, seed=11)
    b = build_model("mlp", 6, 2, generator=torch.Generator().manual_seed(11))
    c = build_model("mlp", 6, 2, seed=12)
    assert torch.equal(torch.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_save_load_round_trip(tmp_path):
    m = build_model("mlp", 4, 3, hidden=8, seed=5)
    spec = model_spec("mlp", 4, 3, hidden=8, dataset="ls", objective="full", family="free",
                      seed=5, config_hash="abc")
    path = tmp_path / "m" / "model.pt"
    save_model(m, path, spec)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt", "model.pt.sha256"]  # no temp file left
    m2, spec2 = load_model(path)
    assert spec2 == spec
    x = torch.randn(10, 4)
    assert torch.equal(m(x), m2(x))
    with pytest.raises(ValueError):
        save_model(m, tmp_path / "bad.pt", {"arch": "mlp"})


def test_saved_bytes_depend_only_on_the_contents(tmp_path):
    """Two specs equal in value, one sharing its string objects (a key reused as a value, as a
    settings dict built from the same names does) and one not, give the same model file; pickle
    alone would write a back-reference for the shared one."""
    import pickle

    model = build_model("mlp", 2, 2, seed=1)
    name = "".join(["ob", "jective"])  # one object used as a key and as a value below
    shared = model_spec("mlp", 2, 2, hidden=32, settings={name: name, "generator": "ecco"},
                        objective=name)
    fresh = model_spec("mlp", 2, 2, hidden=32, settings={"objective": "objective" + "",
                                                          "generator": "ecco"},
                       objective="".join(["obj", "ective"]))
    assert shared == fresh
    assert pickle.dumps(shared) != pickle.dumps(fresh)  # the identity difference the save removes
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    save_model(model, tmp_path / "a" / "model.pt", shared)
    save_model(model, tmp_path / "b" / "model.pt", fresh)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    _, spec = load_model(tmp_path / "a" / "model.pt")
    assert spec == shared
