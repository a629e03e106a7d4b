import pytest

from apalu.lab.params import validate


def test_valid_parameters_pass_unchanged():
    p = dict(activations=["apalu", "relu"], dataset="mnist1d", depths=[5, 10], epochs=2, seeds=[0, 1],
             inits=["0,2", [0, 5], "fixed:1,1", "c1:0,2"], lrs=[1e-3, 0.1], device="auto", output_dir="",
             width=32, n_train=None, k_steps=0, cifar10_path="", note="anything json")
    assert validate(**p) == p


@pytest.mark.parametrize("kw, name, text", [
    (dict(activations=["apalu", "swishy"]), "activations", "unknown activation 'swishy'"),
    (dict(activation="nope"), "activation", "unknown activation"),
    (dict(dataset="imagenet"), "dataset", "unknown dataset 'imagenet'"),
    (dict(datasets=["digits", "x"]), "datasets", "unknown dataset 'x'"),
    (dict(depths=[5, 0]), "depths", "depth must be >= 1"),
    (dict(depth=0), "depth", "depth must be >= 1"),
    (dict(sizes=[50, -3]), "sizes", ">= 1"),
    (dict(width=-1), "width", ">= 1"),
    (dict(n_train=0), "n_train", ">= 1"),
    (dict(epochs=0), "epochs", ">= 1"),
    (dict(inits=["0,2", "2,0"]), "inits", "low < high"),
    (dict(init=[1, 1]), "init", "low < high"),
    (dict(lrs=[0.1, -1]), "lrs", "positive"),
    (dict(device="tpu"), "device", "unknown device"),
    (dict(seeds=[0, 0]), "seeds", "repeat"),
    (dict(seeds=[]), "seeds", "at least one"),
    (dict(model="transformer"), "model", "unknown model"),
    (dict(optimizer="lion"), "optimizer", "unknown optimizer"),
    (dict(output_dir=3), "output_dir", "path string"),
    (dict(mvtec_path=None), "mvtec_path", "path string"),
    (dict(depths=[2.5]), "depths", "integer"),
    (dict(thing=object()), "thing", "JSON"),
])
def test_bad_parameter_named(kw, name, text):
    with pytest.raises(ValueError, match=f"parameter '{name}'") as e:
        validate(**kw)
    assert text in str(e.value)
