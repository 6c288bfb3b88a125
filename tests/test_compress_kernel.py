"""The lookup-table CPU kernel: bit-equal to the eager formula, and the fallbacks around it.

The kernel is built on first use (10-30 s once per machine, then cached); the tests that
need it follow the one skip policy of ``kernel_helpers``.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.utils.cpp_extension

from actlab import _cpp
from actlab.compress import _fastpath, _kernel
from actlab.compress.modules import PWLActivation
from kernel_helpers import require_built

# knots -> segments T = knots - 1. AVX-512: T <= 16 one register per table, <= 32 two, <= 64 four;
# AVX2: <= 8, 16, 32, 64 take 1, 2, 4, 8 registers (blends on index bits 3..5); 65 (T = 64) is the
# largest in registers, 66 and 130 gather
SIZES = (2, 9, 10, 17, 18, 33, 34, 64, 65, 66, 130)
# (channels, input shape): the long-run path, the repeating-period path (short runs),
# and short runs whose period is too long to tabulate
LAYOUTS = {
    "shared": (1, (37, 101)),
    "conv long runs": (3, (2, 3, 9, 13)),
    "conv short runs": (3, (5, 3, 2, 5)),
    "dense": (5, (41, 5)),
    "many channels": (3000, (2, 3000, 32)),
}


def _table(channels, size, seed=0):
    """Random tables; every third channel flat below its range, every fifth above it
    (a flat tail at +-inf gives its value, not 0 * inf)."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(channels, generator=g) * 2 - 3
    values = torch.randn(channels, size, generator=g)
    values[::3, 0], values[::5, -1] = values[::3, 1], values[::5, -2]
    return PWLActivation(values, lo, lo + 1 + torch.rand(channels, generator=g) * 3)


def _inputs(module, shape, seed=1):
    """Inside, beyond both ends, exactly at knots, and NaN / +-inf."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 4
    flat = x.view(-1)
    if module.channels == 1:  # a shared table has the same knots for every element
        flat[: module.size] = torch.linspace(float(module.lo[0]), float(module.hi[0]), module.size)
    flat[5::97], flat[7::101], flat[11::103] = float("nan"), float("inf"), -float("inf")
    flat[13::107], flat[17::109] = 1e30, -3e38  # far beyond the range: huge segment positions
    return x


def _reference(module, x):
    return _fastpath.pwl_lookup(x, *module._tables(x))


def _assert_same(y, ref):
    """Bit for bit, NaNs and infinities included."""
    assert torch.equal(torch.isnan(y), torch.isnan(ref))
    assert torch.equal(torch.nan_to_num(y, nan=0.0), torch.nan_to_num(ref, nan=0.0))


def _kernel_args(module):
    return module.tab, module.lo, module.inv_h


@pytest.fixture(scope="module")
def built():
    require_built(_kernel.LIBRARY)
    return _kernel.ISAS[: _kernel.ISAS.index(_kernel.best_isa()) + 1]


# ---- the kernel (skipped where no compiler can build it) ----

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("isa", _kernel.ISAS)
def test_kernel_equals_eager_formula_bit_for_bit(built, isa, layout):
    if isa not in built:
        pytest.skip(f"this CPU has no {isa}")
    channels, shape = LAYOUTS[layout]
    for size in SIZES:
        module = _table(channels, size, seed=size)
        x = _inputs(module, shape)
        _assert_same(_kernel.lookup(x, *_kernel_args(module), isa=isa), _reference(module, x))


@pytest.mark.parametrize("read", _kernel.AVX2_READS)
@pytest.mark.parametrize("layout", ["shared", "conv long runs", "dense"])
def test_every_avx2_table_read_gives_the_same_bits(built, read, layout):
    if "avx2" not in built:
        pytest.skip("this CPU has no avx2")
    channels, shape = LAYOUTS[layout]
    _kernel.force_avx2_read(read)
    try:
        for size in SIZES:
            module = _table(channels, size, seed=size)
            x = _inputs(module, shape)
            _assert_same(_kernel.lookup(x, *_kernel_args(module), isa="avx2"), _reference(module, x))
        assert _kernel.avx2_read(63) == read and _kernel.avx2_read(200) == (read if read != "permute" else
                                                                          _kernel.avx2_read(201))
    finally:
        _kernel.force_avx2_read(None)
    assert _kernel.avx2_read(63) in _kernel.AVX2_READS


def test_kernel_matches_numpy_interp_inside_and_straight_tails_outside(built):
    module = _table(3, 64)
    x = torch.randn(4, 3, 70) * 4
    y = _kernel.lookup(x, *_kernel_args(module))
    for c in range(3):
        lo, hi, v = float(module.lo[c]), float(module.hi[c]), module.values[c].double().numpy()
        knots, xc = np.linspace(lo, hi, 64), x[:, c].double().numpy()
        h = (hi - lo) / 63
        expect = np.interp(xc, knots, v)
        expect = np.where(xc < lo, v[0] + (xc - lo) * (v[1] - v[0]) / h, expect)
        expect = np.where(xc > hi, v[-1] + (xc - hi) * (v[-1] - v[-2]) / h, expect)
        np.testing.assert_allclose(y[:, c].numpy(), expect, rtol=1e-5, atol=1e-4)


def test_kernel_gives_the_table_at_knots(built):
    values = torch.randn(2, 33)
    module = PWLActivation(values, 0.0, 32.0)  # h = 1 and 1 / 32 exact: knots are exact integers
    x = torch.arange(33.0).expand(3, 2, 33).contiguous()
    torch.testing.assert_close(_kernel.lookup(x, *_kernel_args(module))[1], values, rtol=0, atol=1e-6)


def test_kernel_splits_work_across_threads_with_the_same_result(built):
    module = _table(1, 64)
    x = torch.randn(300_000) * 5  # several parallel tasks of 2^16 elements
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parallel = _kernel.lookup(x, *_kernel_args(module))
    finally:
        torch.set_num_threads(threads)
    _assert_same(parallel, _reference(module, x))


def test_kernel_handles_empty_inputs_and_rejects_other_dtypes(built):
    for channels in (1, 4):
        module = _table(channels, 9)
        for isa in built:
            assert _kernel.lookup(torch.empty(0, channels), *_kernel_args(module), isa=isa).shape == (0, channels)
    with pytest.raises(RuntimeError, match="float32"):
        torch.ops.actlab_pwl.lookup(torch.zeros(4, dtype=torch.float64), *_kernel_args(module))


def test_kernel_reports_shapes_on_meta_tensors_for_torch_compile(built):
    module = _table(3, 9)
    x = torch.empty(2, 3, 5, device="meta")
    y = torch.ops.actlab_pwl.lookup(x, *(t.to("meta") for t in _kernel_args(module)))
    assert y.device.type == "meta" and y.shape == x.shape


def test_forcing_a_narrower_isa_changes_the_path_of_every_call_but_not_the_result(built):
    module, x = _table(1, 65).eval(), torch.randn(1000) * 6
    try:
        for isa in built:
            _kernel.set_isa(isa)
            assert _kernel.current_isa() == isa
            with torch.inference_mode():
                _assert_same(module(x), _reference(module, x))
    finally:
        _kernel.set_isa(None)
    assert _kernel.current_isa() == _kernel.best_isa()
    with pytest.raises(ValueError, match="avx2"):
        _kernel.set_isa("sse9")


def test_load_state_dict_and_to_rederive_the_inference_tables(built):
    source, target = _table(3, 17, seed=1), _table(3, 17, seed=2)
    target.load_state_dict(source.state_dict())
    assert set(source.state_dict()) == {"values", "lo", "hi"}  # derived tables are not saved
    for name in ("a", "b", "tab", "inv_h", "offset"):
        assert torch.equal(getattr(target, name), getattr(source, name))
    assert target._kernel_args[0] is target.tab
    moved = target.double()
    assert moved.a.dtype == torch.float64 and moved._kernel_args[0] is moved.tab


def test_eval_module_uses_the_kernel_without_grad_and_the_reference_otherwise(built, monkeypatch):
    monkeypatch.setattr(_kernel, "_vectorised", True)  # a CPU without AVX2 would skip the kernel
    calls = []
    real = _kernel.try_lookup
    monkeypatch.setattr(_kernel, "try_lookup", lambda *args, **kw: calls.append(1) or real(*args, **kw))
    module = _table(3, 17).eval()
    x = torch.randn(8, 3, 4, 4) * 3
    with torch.inference_mode():
        _assert_same(module(x), _reference(module, x))
    module(x)  # eval, grad mode on, x without grad
    assert len(calls) == 2
    module.train()
    module(x)
    module.eval()
    module(x.requires_grad_())
    assert len(calls) == 2


# ---- fallbacks (always run) ----

def _spy_fallback(monkeypatch):
    """Record calls of the compiled/eager chooser and answer with the eager formula (no compiling)."""
    calls = []
    monkeypatch.setattr(_fastpath, "lookup", lambda args, prefer="auto": calls.append(prefer) or
                        _fastpath.pwl_lookup(*args))
    return calls


def test_failed_build_warns_once_and_the_module_falls_back(monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    monkeypatch.setattr(_kernel, "LIBRARY", _cpp.CppLibrary(_kernel.LIBRARY.name, _kernel.LIBRARY.sources,
                                                            python_module=True, cflags=_kernel.LIBRARY.cflags))
    monkeypatch.setattr(_kernel, "_tried", False)
    monkeypatch.setattr(_kernel, "_module", None)
    calls = _spy_fallback(monkeypatch)
    module = _table(3, 17).eval()
    x = torch.randn(8, 3, 5)
    with pytest.warns(RuntimeWarning, match="kernels failed.*no C\\+\\+ compiler"):
        y = module(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(x)  # a second call does not try again, so does not warn again
    assert calls == ["auto", "auto"]
    _assert_same(y, _reference(module, x))


@pytest.mark.parametrize("make", [lambda x: x.transpose(0, 2), lambda x: x.double(), lambda x: x[:, :, ::2]],
                         ids=["non-contiguous", "float64", "strided"])
def test_inputs_the_kernel_does_not_take_go_to_the_fallback(monkeypatch, make):
    calls = _spy_fallback(monkeypatch)
    module = PWLActivation(torch.randn(64), -4.0, 4.0).eval()
    x = make(torch.randn(6, 5, 6) * 5)
    with torch.inference_mode():
        y = module(x)
    assert calls == ["auto"]
    module.fast = "eager"
    _assert_same(y, module(x))


def test_a_cpu_without_avx2_uses_the_fallback_rather_than_the_scalar_loop(monkeypatch):
    monkeypatch.setattr(_kernel, "_vectorised", False)
    calls = _spy_fallback(monkeypatch)
    module = _table(1, 64).eval()
    x = torch.randn(100) * 5
    with torch.inference_mode():
        _assert_same(module(x), _reference(module, x))
    assert calls == ["auto"]


def test_reference_gives_nan_for_nan_and_follows_the_tail_lines_to_infinity():
    module = PWLActivation(torch.tensor([3.0, 1.0, 2.0, 5.0]), 0.0, 3.0, fast="eager")  # slopes -2 ... +3
    x = torch.tensor([float("nan"), -float("inf"), float("inf"), -2.0, 4.5, 1.5])
    y = module(x)
    expect = torch.tensor([float("nan"), float("inf"), float("inf"), 3.0 + 2 * 2.0, 5.0 + 1.5 * 3.0, 1.5])
    _assert_same(y, expect)


@pytest.mark.parametrize("fast", ["eager", "auto"])
def test_a_flat_tail_gives_its_value_at_infinity_and_nan_stays_nan(fast):
    module = PWLActivation(torch.tensor([[1.0, 1.0, 2.0, 4.0], [0.0, 1.0, 2.0, 2.0]]), 0.0, 3.0, fast=fast).eval()
    x = torch.tensor([-float("inf"), float("inf"), float("nan"), -1e38, 1e38]).repeat(2, 1).t().contiguous()
    expect = torch.tensor([[1.0, float("inf"), float("nan"), 1.0, float("inf")],
                           [-float("inf"), 2.0, float("nan"), -1e38 - 0.0, 2.0]]).t()
    y = module(x)
    _assert_same(y[[0, 1, 2]], expect[[0, 1, 2]])
    assert y[3, 0] == 1.0 and y[4, 1] == 2.0


def test_tracing_or_exporting_first_never_turns_the_kernel_off(built, monkeypatch):
    module = _table(1, 65).eval()
    x = torch.randn(4, 70) * 3
    with torch.no_grad():
        torch.jit.trace(module, x)
    torch.export.export(module, (x,))
    calls = []
    real = _kernel.try_lookup
    monkeypatch.setattr(_kernel, "try_lookup", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode():
        _assert_same(module(x), _reference(module, x))
    assert calls == [1]
