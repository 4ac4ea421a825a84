"""A lab runs where --device says: the runner makes the device the default for every factory
call, the data layer and the seeded generators follow it, and on a GPU every lab's training
runs there (the CUDA tests run only where a GPU is)."""

from __future__ import annotations

import pytest
import torch

from mlatlas.core import fixed_rng
from mlatlas.core.data import image_classification
from mlatlas.core.runner import discover, on_device, run_lab
from mlatlas.core.seeding import torch_generator


def test_on_cpu_no_mode_is_installed():
    # the default-device mode costs a Python call per torch function: never on the CPU
    with on_device(torch.device("cpu")):
        assert torch.get_default_device().type == "cpu"
        assert not torch.overrides._get_current_function_mode_stack()


def test_models_and_data_follow_the_lab_device():
    # "meta" stands in for an accelerator: tensors with a device and no storage
    with on_device(torch.device("meta")):
        layer = torch.nn.Linear(4, 3)
        data = image_classification("digits", fixed_rng("device-test"), n_train=64, n_test=32)
        made = torch.as_tensor([1.0, 2.0])
    assert layer.weight.device.type == "meta"
    assert data.x_train.device.type == "meta" and data.y_test.device.type == "meta"
    assert made.device.type == "meta"
    assert torch.zeros(1).device.type == "cpu"  # the mode ends with the lab


def test_generators_follow_the_default_device_unless_told(monkeypatch):
    # no accelerator here and no generator on "meta": record the device each one is made on
    asked: list[torch.device] = []
    cpu_generator = torch.Generator
    monkeypatch.setattr(torch, "get_default_device", lambda: torch.device("meta"))
    monkeypatch.setattr(
        torch, "Generator", lambda device: asked.append(torch.device(device)) or cpu_generator()
    )
    torch_generator(0, "k")
    torch_generator(0, "k", device="cpu")
    assert asked == [torch.device("meta"), torch.device("cpu")]


def test_a_seeded_generator_repeats():
    a = torch.randn(5, generator=torch_generator(0, "k"))
    b = torch.randn(5, generator=torch_generator(0, "k"))
    assert torch.equal(a, b) and torch_generator(0, "k").device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "topic,name", [("optim", "schedules"), ("cnn", "lenet_mnist"), ("multimodal", "fusion")]
)
def test_lab_trains_on_cuda(topic, name, tmp_path):
    spec = next(s for s in discover(topic) if s.name == name)
    r = run_lab(spec, scale="smoke", seed=0, out=tmp_path, device="cuda")
    assert r.ok, r.error
    assert r.device.startswith("cuda")
    assert not any("was requested" in n for n in r.notes)  # every fit found its model there
