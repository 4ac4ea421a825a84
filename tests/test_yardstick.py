"""The generative yardstick: trained once and loaded after, keyed by its recipe and code; its
scores rank a damaged generator below the real-data floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require_data

from mlatlas.core.data import load_mnist
from mlatlas.generative.vae import yardstick as ys


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A yardstick trained for 150 steps (the recipe's 1,500 take about 50 s on 2 cores)."""
    require_data("mnist")
    mp = pytest.MonkeyPatch()
    mp.setitem(ys.RECIPE, "steps", 150)
    root = tmp_path_factory.mktemp("yardstick")
    first = ys.load_yardstick(root)
    yield first, root
    mp.undo()


def test_the_yardstick_trains_once_then_loads_the_same_weights(quick):
    first, root = quick
    assert first.trained and first.test_accuracy > 0.9  # 150 Adam steps reached 0.951 here
    state = torch.random.get_rng_state()
    again = ys.load_yardstick(root)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator untouched
    assert not again.trained and again.test_accuracy == first.test_accuracy
    for a, b in zip(first.net.state_dict().values(), again.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.MonkeyPatch.context() as mp:  # another recipe is another entry, never this one
        mp.setitem(ys.RECIPE, "steps", 1)
        state = torch.random.get_rng_state()
        assert ys.load_yardstick(root).trained
        assert torch.equal(torch.random.get_rng_state(), state)  # training seeds its own


def test_damaged_samples_score_worse_than_the_real_floor(quick):
    """Against real test images: the other half of the test set (the floor) scores best;
    images of only three digits lose recall and coverage; blurred-to-noise images lose
    precision and confidence. Both have a larger Fréchet distance than the floor."""
    net, _ = quick
    n = 600
    floor = net.floor(n)
    x, y = load_mnist("test")
    rng = np.random.default_rng(1)
    real = x[rng.permutation(len(x))[:n]]
    three = x[np.flatnonzero(y < 3)[:n]]
    noisy = np.clip(x[:n] / 255.0 + rng.normal(0, 0.6, (n, 28, 28)), 0, 1)
    s3, sn = net.scores(real, three), net.scores(real, noisy)
    assert floor["classes_present"] == 10 and sum(sorted(s3["share"])[-3:]) > 0.9
    assert s3["max_deviation_from_uniform"] > floor["max_deviation_from_uniform"] + 0.1
    assert s3["recall"] < floor["recall"] - 0.2
    assert sn["precision"] < floor["precision"] - 0.2
    assert sn["mean_confidence"] < floor["mean_confidence"]
    assert min(s3["frechet_distance"], sn["frechet_distance"]) > 2 * floor["frechet_distance"]
    with pytest.raises(ValueError, match="2n"):
        net.floor(6000)


def test_images_in_any_layout_become_n_1_28_28_in_unit_range():
    u8 = np.full((2, 28, 28), 255, np.uint8)
    assert ys.as_images(u8).shape == (2, 1, 28, 28) and float(ys.as_images(u8).max()) == 1.0
    flat = torch.rand(3, 784)
    torch.testing.assert_close(ys.as_images(flat).flatten(1), flat)
