"""Mixed precision and odd inputs (issue 15): every kind of activation, in every dtype and layout.

The policy (README, ``learnable/_base.py``): the output has the input's dtype;
float32 and float64 inputs are computed in their own dtype, parameters cast on
the fly; bfloat16 and float16 inputs are computed in float32 and rounded once.
Every case compares with the same module in float64 on the same (rounded)
inputs: NaN gives NaN, +-inf the reference's limit, finite inputs the
reference within the dtype's tolerance (``TOLERANCE``), never an exception.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re

import pytest
import torch
from torch import nn

from actlab import _cpp
from actlab.activations import Site, make_activation
from actlab.compress import _fastpath
from actlab.compress.fit import make_module
from actlab.errors import ActlabError
from actlab.models import make_model

from family_helpers import learnable_families

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
# Relative error allowed against the float64 reference, scaled by |ref| + |x| + 1 (the |x| term:
# the rounding of x / range or x / h moves a steep or periodic function by about eps |x| f').
# Half inputs are computed in float32 and rounded once: half an ulp of the result on top.
FLOAT32 = 2e-5
TOLERANCE = {torch.float64: 1e-12, torch.float32: FLOAT32, torch.bfloat16: FLOAT32, torch.float16: FLOAT32}
ROUNDING = {torch.float64: 0.0, torch.float32: 0.0, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
# torch's own activations and expressions compute half types in the half type, rounding more than once.
FIXED_ROUNDINGS = 4


LEARNABLE = sorted(set(learnable_families()) | {
    "slaf(degree=4,basis=monomial)", "slaf(degree=4,basis=chebyshev)", "slaf(degree=4,basis=legendre)",
    "slaf(degree=4,basis=hermite)", "slaf(degree=2,basis=fourier)", "slaf(degree=4,basis=rbf)",
    "slaf(degree=3,hybrid=true)", "slaf(degree=3,standardize=true)", "spline(knots=16,order=1)",
    "spline(knots=16,order=3)", "rational", "subnet(hidden=4,depth=1,inner=tanh)",
    "subnet(hidden=4,depth=1,inner=relu)", "subnet(hidden=3,depth=2,inner=tanh)",
    "subnet(hidden=3,depth=2,inner=relu)",
})
PER_CHANNEL = ["slaf(degree=3,sharing=channel)", "spline(knots=8,order=3,sharing=channel)",
               "rational(sharing=channel)", "subnet(hidden=4,sharing=channel)"]
FIXED = ["gelu", "tanh", "relu", "mul(x, sigmoid(x))", "theta_relu", "theta_relu(mode=trainable,theta=0.3)"]
COMPRESSED = ["pwl", "cubic", "poly", "pwl per channel"]
CHANNELS = 4
# torch's own functions, not ours to patch
TORCH_QUIRKS = {"gelu": "torch's float32 and half GELU give NaN at +inf (its float64 GELU gives inf)"}
# Kinds whose evaluation scales x by 1/h (h the grid step): beyond FLT_MAX * h that overflows,
# and a huge finite input gives +-inf with the reference's sign instead of its finite value.
GRID_SCALED = ("spline", "pwl", "cubic")


def _target(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.silu(x) + 0.1 * x  # both tails sloped, so +-inf has a signed limit


@functools.cache
def _built(name: str) -> nn.Module:
    if name in COMPRESSED:
        channels = CHANNELS if name.endswith("per channel") else 1
        lo, hi = torch.full((channels,), -3.0, dtype=torch.float64), torch.linspace(2.0, 3.5, channels).double()
        method, size = name.split()[0], {"pwl": 17, "cubic": 9, "poly": 6}[name.split()[0]]
        tails = torch.tensor([[0.1, 1.1]], dtype=torch.float64).expand(channels, 2)
        return make_module(_target, lo, hi, method, size, tails=tails)
    module = make_activation(name, Site(CHANNELS, "conv"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # units made different from each other and from the exact fit
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def module(name: str) -> nn.Module:
    return copy.deepcopy(_built(name)).eval()


def _values() -> torch.Tensor:
    """32 inputs: in range, beyond it, large, and the odd ones (NaN, +-inf, +-1e38)."""
    finite = [0.0, 0.3, -0.7, 1.5, -2.2, 2.9, -3.1, 4.0, -6.0, 10.0, -25.0, 1e3, -1e4, 1e4, 0.05, -0.05]
    odd = [float("nan"), float("inf"), -float("inf"), 1e38, -1e38, float("nan"), 1e30, -1e30]
    more = [0.9, -0.9, 1.1, -1.1, 2.5, -2.5, 7.0, -7.0]
    return torch.tensor(finite + odd + more, dtype=torch.float64)


def layouts(per_channel: bool, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    v = _values().to(dtype)
    out = {
        "contiguous": v.reshape(8, CHANNELS),
        "transposed": v.reshape(CHANNELS, 8).t(),
        "channels_last": v.reshape(2, CHANNELS, 2, 2).contiguous(memory_format=torch.channels_last),
        "empty": v[:0].reshape(0, CHANNELS),
    }
    if not per_channel:  # a 0-d input has no channel dim
        for i, k in enumerate([1, 16, 18, 20]):  # 0.3, NaN, -inf, -1e38
            out[f"0-d #{i}"] = v[k].reshape(())
    return out


def _is_per_channel(name: str) -> bool:
    return name in PER_CHANNEL or name.endswith("per channel")


def mismatches(name: str, x: torch.Tensor, y: torch.Tensor, ref: torch.Tensor) -> list[str]:
    """Where ``y`` (the module at ``x``) departs from ``ref`` (float64, at the same x); empty if nowhere."""
    dtype = x.dtype
    if y.dtype != dtype or y.shape != x.shape:
        return [f"output {y.dtype} {tuple(y.shape)} for input {dtype} {tuple(x.shape)}"]
    xd, yd, expect = x.double(), y.double(), ref.to(dtype).double()
    rounding = ROUNDING[dtype] * (FIXED_ROUNDINGS if name in FIXED else 1)
    huge = xd.abs() > 1e20
    scale = ref.abs() + 1 + torch.where(huge, 0.0, xd.abs())
    bound = TOLERANCE[dtype] * scale + rounding * ref.abs()
    if "fourier" in name:  # periodic: its value at a huge x is the phase's rounding error; bounded is all
        bound = torch.where(huge, float("inf"), bound)
    same_odd = (yd == expect) | (yd.isnan() & expect.isnan())
    same = torch.where(torch.isfinite(expect), (yd - ref).abs() <= bound, same_odd)
    if any(kind in name for kind in GRID_SCALED):
        same |= huge & torch.isinf(yd) & (torch.sign(yd) == torch.sign(ref))
    bad = (~same).nonzero()
    return [f"x={float(xd[tuple(i)]):.4g}: got {float(yd[tuple(i)]):.6g}, reference {float(ref[tuple(i)]):.6g}"
            for i in bad[:4]]


@pytest.fixture(autouse=True)
def _no_compiling(monkeypatch):
    """The table's "auto" mode times a torch.compile'd formula against eager once per layout and
    dtype: seconds each. The formula is the same (test_compress_modules tests the compiled one)."""
    monkeypatch.setattr(_fastpath, "_compiled", _fastpath.pwl_lookup)
    monkeypatch.setattr(_fastpath, "_choice", {})


def _run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return m(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", LEARNABLE + PER_CHANNEL + FIXED + COMPRESSED)
def test_every_dtype_and_layout_matches_the_float64_reference_with_nan_and_infinities(name, dtype):
    m = module(name)
    ref_module = copy.deepcopy(m).double()
    failures, kernel_only = [], []
    for layout, x in layouts(_is_per_channel(name), dtype).items():
        ref = _run(ref_module, x.double())
        try:
            bad = mismatches(name, x, _run(m, x), ref)
        except Exception as exc:  # noqa: BLE001 - reported with the case it happened in
            bad = [f"raised {type(exc).__name__}: {exc}"]
        if bad:
            with _cpp.kernels_disabled():
                without_kernels = mismatches(name, x, _run(m, x), ref)
            (failures if without_kernels else kernel_only).append(f"{layout}: {'; '.join(bad)}")
    if failures and name in TORCH_QUIRKS and set(re.findall(r"x=([^:]+):", "".join(failures))) == {"inf"}:
        pytest.xfail(TORCH_QUIRKS[name])
    assert not failures, "\n".join(failures)
    if kernel_only:
        pytest.xfail("only the C++ kernels differ: " + " | ".join(kernel_only))


def _input_gradient(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    y = m(x)
    assert y.dtype == x.dtype
    y.backward(torch.ones_like(y))
    assert x.grad.dtype == x.dtype
    return x.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", LEARNABLE + ["theta_relu(mode=trainable,theta=0.3)"])
def test_gradients_reach_float32_parameters_and_stay_finite_at_finite_inputs(name, dtype):
    m = module(name).train()
    ref_module = copy.deepcopy(m).double()
    x = _values().to(dtype)
    # batch statistics (standardize) spread a NaN anywhere to every output: finite inputs only there
    x = torch.where(x.isfinite(), x, 1.0) if "standardize" in name else x
    x, finite = x.reshape(8, CHANNELS), x.isfinite().reshape(8, CHANNELS)  # +-1e38 included
    assert torch.isfinite(_input_gradient(m, x)[finite]).all()  # the kernels' too (rational's scaled powers)
    # the parameters: their own dtype, and the float64 reference's gradient, on moderate inputs
    xf = x[x.double().abs() <= 1e4].reshape(-1, CHANNELS)
    m.zero_grad()
    m(xf).sum().backward()
    ref_module(xf.double()).sum().backward()
    for (pname, p), ref in zip(m.named_parameters(), ref_module.parameters()):
        if p.numel() == 0:
            continue
        assert p.grad is not None and p.grad.dtype == torch.float32, pname
        rtol = 1e-6 if dtype == torch.float64 else 1e-3  # float32 parameter gradients
        torch.testing.assert_close(p.grad.double(), ref.grad, rtol=rtol, atol=rtol * float(ref.grad.abs().max()),
                                   msg=pname)


@pytest.mark.parametrize("name", LEARNABLE + PER_CHANNEL + FIXED + COMPRESSED)
def test_modules_move_to_the_meta_device_and_infer_shapes(name):
    m = module(name).to("meta")
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.empty(2, CHANNELS, 3, device="meta", dtype=dtype)
        y = m(x)
        assert y.device.type == "meta" and y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("name", ["spline", "slaf", "rational", "subnet"])
def test_integer_inputs_raise_one_clear_actlab_error(name):
    with pytest.raises(ActlabError, match="floating-point") as info:
        module(name)(torch.arange(4))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["slaf", "spline(order=3)", "rational", "subnet(depth=2)"])
def test_float32_inputs_under_autocast_keep_float32(name):
    m = module(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert m(torch.randn(4, 6)).dtype == torch.float32
        assert m(torch.randn(4, 6, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("family", learnable_families())
def test_a_cnn_trains_under_bfloat16_autocast_with_every_learnable_family(family):
    torch.manual_seed(0)
    model = make_model("cnn(channels=4)", (1, 10, 10), 3, f"{family}(sharing=channel)")
    x, labels = torch.randn(16, 1, 10, 10), torch.randint(0, 3, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, labels)
        assert logits.dtype == torch.bfloat16  # autocast reached the head, so the activations saw bfloat16
        loss.backward()
        opt.step()
        losses.append(loss.item())
    act_params = [p for p in model.acts.parameters() if p.numel()]
    assert all(p.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in act_params)
    assert losses[-1] < losses[0]


def test_spline_calibration_in_a_bfloat16_call_moves_the_float32_parameters():
    x = (2 * torch.randn(64, 3) + 1).to(torch.bfloat16)
    modules = [make_activation("spline(knots=8,calibrate=true,calibrate_batches=2)") for _ in range(2)]
    for m, batch in zip(modules, [x, x.float()]):
        values = m.values
        for _ in range(2):
            y = m(batch)
        assert m.values is values and values.dtype == torch.float32 and y.dtype == batch.dtype
        assert float(m.hi[0]) > 5  # the grid moved to mean + 3 std
    torch.testing.assert_close(modules[0].values, modules[1].values)
    torch.testing.assert_close(modules[0](x).float(), modules[1](x.float()), rtol=2**-8, atol=1e-5)


@pytest.mark.parametrize("name", ["slaf(degree=4,basis=chebyshev)", "slaf(degree=4,basis=rbf)",
                                  "slaf(degree=3,hybrid=true)", "slaf(degree=3,standardize=true)",
                                  "spline(knots=16,order=1)", "spline(knots=16,order=3)", "rational",
                                  "subnet(hidden=4,depth=1,inner=tanh)", "subnet(hidden=4,depth=1,inner=relu)",
                                  "subnet(hidden=3,depth=2,inner=relu)", "pwl", "cubic", "poly"])
def test_infinities_give_the_limit_of_the_tails(name):
    """The float64 reference itself: +-inf is where the tails at +-1e6 point (a bounded one: its value)."""
    m = module(name).double()
    with torch.no_grad():
        far = m(torch.tensor([-2e6, -1e6, 1e6, 2e6], dtype=torch.float64))
        y = m(torch.tensor([-float("inf"), float("inf")], dtype=torch.float64))
    slopes = torch.stack([far[1] - far[0], far[3] - far[2]]) / 1e6
    direction = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    if "tanh" in name:  # saturated
        torch.testing.assert_close(y, far[[0, 3]])
    else:
        assert torch.equal(y, direction * torch.sign(slopes) * float("inf")), (y, slopes)


FLAT_ONES = [n for n in LEARNABLE + PER_CHANNEL if "fourier" not in n]  # periodic: no limit, NaN


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", FLAT_ONES)
def test_a_constant_function_gives_its_constant_at_infinity_not_zero_times_inf(name, dtype):
    """All parameters 0: every tail is flat, every weight 0 (subnet's 0 * inf, rational's 0 / 0 tops)."""
    m = module(name)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    x = torch.tensor([-float("inf"), float("inf"), 0.0, float("nan"), -1e38, 1e38], dtype=dtype)
    x = x.repeat(CHANNELS, 1).t().contiguous()
    for kernels in (True, False):
        with _cpp.kernels_disabled() if not kernels else contextlib.nullcontext():
            y = _run(m.to(dtype), x)
        assert torch.equal(y[[0, 1, 2, 4, 5]], torch.zeros(5, CHANNELS, dtype=dtype)), (kernels, y)
        assert y[3].isnan().all()


@pytest.mark.parametrize("name", COMPRESSED)
def test_a_compressed_relu_is_0_at_minus_infinity_and_inf_at_plus_infinity(name):
    channels = CHANNELS if name.endswith("per channel") else 1
    lo, hi = torch.full((channels,), -3.0, dtype=torch.float64), torch.full((channels,), 3.0, dtype=torch.float64)
    method = name.split()[0]
    tails = torch.tensor([[0.0, 1.0]], dtype=torch.float64).expand(channels, 2)
    m = make_module(torch.relu, lo, hi, method, {"pwl": 17, "cubic": 9, "poly": 6}[method], tails=tails).eval()
    x = torch.tensor([-float("inf"), float("inf"), float("nan")]).repeat(channels, 1).t().contiguous()
    for kernels in (True, False):
        with _cpp.kernels_disabled() if not kernels else contextlib.nullcontext():
            y = _run(m, x)
        assert torch.isfinite(y[0]).all() and (y[1] == float("inf")).all() and y[2].isnan().all(), (kernels, y)
