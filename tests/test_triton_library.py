"""The Triton kernels' loader and tiling (actlab._triton): failures fall back, tiles cover every element once."""

from __future__ import annotations

import warnings

import pytest
import torch

from actlab import _triton
from actlab.activations.learnable import _kernels
from triton_helpers import needs_triton


def test_a_kernel_module_that_fails_to_import_warns_once_and_loads_false():
    library = _triton.TritonLibrary("broken", ["actlab.no_such_kernels"])
    try:
        with pytest.warns(RuntimeWarning, match="broken Triton kernels are not available"):
            assert library.load() is False
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert library.load() is False  # decided once: no second warning
        assert "ModuleNotFoundError" in library.error
    finally:
        _triton._LIBRARIES.remove(library)


def test_without_the_triton_kernels_cuda_like_calls_take_the_reference(monkeypatch):
    monkeypatch.setattr(_kernels, "_triton_ready", lambda: False)
    with _triton.on_cpu():
        assert not _kernels.usable(torch.zeros(3, 4), torch.zeros(1, 2))
    assert _kernels.usable(torch.zeros(3, 4), torch.zeros(1, 2)) == _kernels._ready()


def test_parameters_on_another_device_or_dtype_keep_the_triton_kernels_off():
    with _triton.on_cpu():
        assert not _kernels.usable(torch.zeros(3, 4), torch.zeros(1, 2, dtype=torch.float64))
        assert not _kernels.usable(torch.zeros(3, 4), torch.zeros(1, 2, device="meta"))


@pytest.mark.parametrize("shape, units", [((3, 5, 7, 2), 5), ((37, 70), 70), ((1000, 3), 1), ((5,), 1),
                                          ((2, 3, 1), 3), ((300, 130), 130), ((2, 1, 4), 1)])
def test_the_tiles_cover_every_element_once_with_its_channel(shape, units):
    t = _triton.tiles(torch.empty(shape), units)
    gj, gc = t.grid
    j = torch.arange(gj * t.bj)[:, None]
    c = torch.arange(gc * t.bc)[None, :]
    if t.flat:
        offs, mask = j.expand(-1, c.shape[1]), (j < t.n_j) & (c < t.c)
    else:
        r, s = j // t.s, j % t.s
        offs, mask = r * t.c * t.s + c * t.s + s, (j < t.n_j) & (c < t.c)
    covered = offs[mask]
    assert torch.equal(covered.sort().values, torch.arange(torch.Size(shape).numel()))
    if units > 1:  # the element's channel is its column
        channel = (offs // t.s) % t.c
        assert torch.equal(channel[mask], c.expand_as(offs)[mask])


@needs_triton
def test_on_cpu_forces_cpu_calls_inside_the_block_only():
    before = _triton.cpu_forced()
    with _triton.on_cpu():
        assert _triton.interpreting() and _triton.cpu_forced()
        assert _triton.takes(torch.zeros(2))
    assert _triton.cpu_forced() == before
