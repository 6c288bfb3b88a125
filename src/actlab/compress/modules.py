"""Compressed activations: lookup tables, cubic splines and polynomials.

Each module holds C functions of one variable (C = 1 for an activation shared
by all channels; otherwise one per channel along dim 1) on a range
``[lo, hi]`` per channel, continued by straight lines beyond it. Tables are
buffers, not parameters: these modules are for inference.

Dtypes as for the learnable families: the output has the input's dtype;
float32 and float64 inputs are computed in their own dtype (the tables cast to
it), bfloat16 and float16 inputs in float32 and rounded once. NaN gives NaN;
+-inf follows the tail lines: +-inf, or the tail's value where it is flat
(the excess beyond a flat tail is clamped, so that 0 * inf never happens).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab import _devices
from actlab.compress import _fastpath, _kernel, _triton_path
from actlab.compress._fastpath import flat_tail_clamps
from actlab.errors import ActlabError

FAST_MODES = ("auto", "compiled", "eager")
_OWN_DTYPES = (torch.float32, torch.float64)  # computed as given; other inputs in float32


def _as_rows(t: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None]
    if t.ndim < 2:
        raise ActlabError(f"{name} must have shape (K,) or (C, K), got {tuple(t.shape)}")
    return t.contiguous()


def _as_channels(v: Tensor | float, channels: int, name: str) -> Tensor:
    v = torch.as_tensor(v, dtype=torch.float32).reshape(-1)
    if v.numel() == 1:
        v = v.expand(channels)
    if v.numel() != channels:
        raise ActlabError(f"{name} must have 1 or {channels} entries, got {v.numel()}")
    return v.clone()


class _Compressed(nn.Module):
    """Shared plumbing: a range per channel and per-channel broadcasting."""

    def _init_range(self, lo: Tensor | float, hi: Tensor | float, channels: int) -> None:
        lo_t, hi_t = _as_channels(lo, channels, "lo"), _as_channels(hi, channels, "hi")
        if not bool((hi_t > lo_t).all()):
            raise ActlabError("every range needs hi > lo")
        self.register_buffer("lo", lo_t)
        self.register_buffer("hi", hi_t)

    @property
    def channels(self) -> int:
        return self.lo.numel()

    def _in_float32(self, x: Tensor) -> Tensor:
        """A half input in float32, rounded once (in bfloat16 the grid coordinate would keep 8 bits),
        not through ``__call__`` (hooks run once); another device or a non-float input: one line of error."""
        _devices.check_input(type(self).__name__, x, self.lo, "buffers")
        return self.forward(x.float()).to(x.dtype)

    def _view(self, t: Tensor, x: Tensor) -> Tensor:
        """(C, ...) per-channel constants shaped to broadcast against x along dim 1."""
        if self.channels == 1:
            return t.reshape(t.shape[1:]) if t.ndim > 1 else t.reshape(())
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ActlabError(
                f"{type(self).__name__} has {self.channels} channels but got input of shape {tuple(x.shape)}"
            )
        return t.reshape(1, self.channels, *t.shape[1:], *([1] * (x.ndim - 2)))

    def curve(self, xs: Tensor) -> Tensor:
        """Values on 1-D ``xs``: shape (C, len(xs)) when per channel, else (len(xs),)."""
        xs = xs.reshape(-1).to(self.lo.dtype)
        if self.channels == 1:
            return self(xs)
        return self(xs[:, None].expand(-1, self.channels)).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}"


class PWLActivation(_Compressed):
    """A lookup table: piecewise linear on a uniform grid of K knots per channel.

    ``values`` (K,) or (C, K) are the function at ``lo + k h``, h = (hi-lo)/(K-1).
    Evaluation is ``u = (x-lo)/h; i = clamp(floor(u), 0, K-2); t = u - i;
    y = a[i] + t b[i]`` with slope table b = diff(values): t is not clamped, so
    beyond the range the first and last segments continue as straight lines.
    ``fast`` picks the evaluation in eval mode: "eager" runs the formula op by
    op, "compiled" fuses it into one pass with ``torch.compile``, and "auto"
    uses the hand-vectorised CPU kernel (:mod:`actlab.compress._kernel`) for
    contiguous float32 inputs where it builds (on x86-64 with AVX2 or
    AVX-512), and otherwise times compiled
    and eager once per device and layout and keeps the faster. On CUDA "auto"
    takes a Triton kernel (:mod:`actlab.compress._triton_pwl`, same values,
    differentiable in x) for contiguous float32 inputs, training included;
    elsewhere training, and inputs that require grad, take the differentiable
    eager formula. NaN inputs give NaN on every path.
    """

    def __init__(self, values: Tensor, lo: Tensor | float, hi: Tensor | float, fast: str = "auto") -> None:
        super().__init__()
        values = _as_rows(values, "values")
        if values.shape[-1] < 2:
            raise ActlabError(f"a lookup table needs at least 2 knots, got {values.shape[-1]}")
        if fast not in FAST_MODES:
            raise ActlabError(f"fast must be one of {', '.join(FAST_MODES)}, got {fast!r}")
        self.fast = fast
        self.register_buffer("values", values)
        self._init_range(lo, hi, values.shape[0])
        # What inference reads, derived once from (values, lo, hi) rather than on every call;
        # not saved: recomputed after load_state_dict, and moved and cast with the module.
        for name in ("a", "b", "tab", "inv_h", "offset", "lc", "uc"):
            self.register_buffer(name, None, persistent=False)
        self._derive()
        self.register_load_state_dict_post_hook(lambda module, _: module._derive())

    def _derive(self) -> None:
        t = self.size - 1
        with torch.no_grad():
            self.a = self.values[:, :-1].contiguous()
            self.b = (self.values[:, 1:] - self.values[:, :-1]).contiguous()  # diff, which ONNX lacks
            # the kernel's layout per channel: a, b, then a and b interleaved (for pair gathers)
            pairs = torch.stack([self.a, self.b], dim=-1).reshape(self.channels, 2 * t)
            self.tab = torch.cat([self.a, self.b, pairs], dim=1).contiguous()
            self.inv_h = t / (self.hi - self.lo)
            self.offset = torch.arange(self.channels, device=self.values.device) * t
            self.lc, self.uc = flat_tail_clamps(self.b[:, 0], self.b[:, -1])
        self._refresh()

    def _refresh(self) -> None:
        # Kept in the instance dict: reading a buffer through nn.Module.__getattr__ costs
        # about 0.5 us, three times per call, as much as ReLU on a small feature map.
        self._kernel_args = (self.tab, self.lo, self.inv_h)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._refresh()  # .to(), .float(), .share_memory() replace the buffers
        return out

    @property
    def size(self) -> int:
        return self.values.shape[1]

    def _tables(self, x: Tensor) -> tuple:
        dt = x.dtype
        lo, inv_h = self._view(self.lo.to(dt), x), self._view(self.inv_h.to(dt), x)
        return (lo, inv_h, self.a.to(dt).reshape(-1), self.b.to(dt).reshape(-1), self._view(self.offset, x),
                self.size - 2, self._view(self.lc.to(dt), x), self._view(self.uc.to(dt), x))

    def forward(self, x: Tensor) -> Tensor:
        # The inference path first, with as few Python steps as possible: at batch 1 a
        # table's whole call costs about as much as these checks.
        if not (self.training or x.requires_grad) and self.fast == "auto" and _kernel.preferred():
            if not (torch._C._is_tracing() or torch.compiler.is_compiling()):
                y = _kernel.try_lookup(x, *self._kernel_args)
                if y is not None:
                    return y
        if x.dtype not in _OWN_DTYPES or x.device != self._kernel_args[1].device:
            return self._in_float32(x)
        if self.fast == "auto" and (y := _triton_path.pwl(x, *self._kernel_args)) is not None:
            return y  # CUDA, in training too
        if (self.training or x.requires_grad or self.fast == "eager" or torch._C._is_tracing()
                or torch.compiler.is_compiling()):
            return _fastpath.pwl_lookup(x, *self._tables(x))  # differentiable; standard ops for export
        return _fastpath.lookup((x, *self._tables(x)), prefer=self.fast)

    def flops_per_element(self) -> float:
        # u = (x - lo) * inv_h: 2, floor: 1, clamp: 2, t = u - i: 1, a + t b: 2 (plus two table reads)
        return 8.0


class CubicActivation(_Compressed):
    """A cubic spline on a uniform grid: ``coef`` (C, K-1, 4) holds, per segment,
    the coefficients of 1, t, t^2, t^3 in the local variable t = u - i, u = (x-lo)/h.

    Beyond the range it continues as the tangent line at the end knots (value and
    derivative of the spline there), so it is C1 at the range ends. CUDA: :mod:`actlab.compress._triton_cubic`.
    """

    def __init__(self, coef: Tensor, lo: Tensor | float, hi: Tensor | float) -> None:
        super().__init__()
        coef = torch.as_tensor(coef, dtype=torch.float32)
        if coef.ndim == 2:
            coef = coef[None]
        if coef.ndim != 3 or coef.shape[-1] != 4 or coef.shape[1] < 1:
            raise ActlabError(f"coef must have shape (K-1, 4) or (C, K-1, 4), got {tuple(coef.shape)}")
        self.register_buffer("coef", coef.contiguous())
        self._init_range(lo, hi, coef.shape[0])
        self.register_buffer("clamps", None, persistent=False)  # derived from coef, not saved
        self._derive()
        self.register_load_state_dict_post_hook(lambda module, _: module._derive())

    def _derive(self) -> None:
        c = self.coef
        # the end slopes as forward computes them: at t = 0 of the first segment, t = 1 of the last
        ends = c[:, 0, 1], (3 * c[:, -1, 3] + 2 * c[:, -1, 2]) + c[:, -1, 1]
        self.clamps = torch.stack(flat_tail_clamps(*ends), 1)

    @property
    def size(self) -> int:
        return self.coef.shape[1] + 1

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype not in _OWN_DTYPES or x.device != self.lo.device:
            return self._in_float32(x)
        if (y := _triton_path.cubic(x, self.coef, self.lo, self.hi, self.clamps)) is not None:
            return y  # CUDA, in training too
        k = self.size
        coef = self.coef.to(x.dtype)
        lo = self._view(self.lo.to(x.dtype), x)
        inv_h = self._view((k - 1) / (self.hi.to(x.dtype) - self.lo.to(x.dtype)), x)
        u = (x - lo) * inv_h
        # a NaN index would read out of bounds (and fail in ONNX Runtime); segment 0 keeps y = NaN through t
        i = torch.nan_to_num(torch.clamp(torch.floor(u), 0, k - 2), nan=0.0)
        t = torch.clamp(u - i, 0.0, 1.0)
        flat = coef.reshape(-1, 4)
        j = (i.long() + self._view(torch.arange(self.channels, device=x.device) * (k - 1), x)).reshape(-1)
        c = flat[j].reshape(*x.shape, 4)
        y = ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]
        # slope in u units at the segment end the input lies beyond (t = 0 or 1)
        slope = (3 * c[..., 3] * t + 2 * c[..., 2]) * t + c[..., 1]
        lc, uc = (self._view(b.to(x.dtype), x) for b in self.clamps.unbind(1))
        return y + slope * torch.clamp(u - i - t, lc, uc)

    def flops_per_element(self) -> float:
        # index as for a table (6), clamp t (2), Horner for the value (6), tail line (2 + 6 for its slope)
        return 22.0


class PolyActivation(_Compressed):
    """A polynomial of degree d in u = (2x - lo - hi)/(hi - lo), evaluated with Horner.

    ``coeffs`` (d+1,) or (C, d+1) are the coefficients of u^0 ... u^d; the
    normalised variable keeps them of moderate size. Beyond the range it
    continues as a straight line from the range ends, with the slopes
    ``tails`` (C, 2) (below lo, above hi, in x units; NaN or None: the
    tangent at the range end).
    """

    def __init__(self, coeffs: Tensor, lo: Tensor | float, hi: Tensor | float, tails: Tensor | None = None) -> None:
        super().__init__()
        coeffs = _as_rows(coeffs, "coeffs")
        self.register_buffer("coeffs", coeffs)
        self._init_range(lo, hi, coeffs.shape[0])
        self.register_buffer("tail_slope", self._tail_slope(tails))
        self.register_buffer("clamps", None, persistent=False)  # derived from tail_slope, not saved
        self._derive()
        self.register_load_state_dict_post_hook(lambda module, _: module._derive())

    def _derive(self) -> None:
        self.clamps = torch.stack(flat_tail_clamps(*self.tail_slope.unbind(1)), 1)

    def _tail_slope(self, tails: Tensor | None) -> Tensor:
        """(C, 2) slopes in u units: the given ones, or the tangents at u = -1 and u = 1."""
        k = torch.arange(self.coeffs.shape[1], dtype=torch.float64)
        c = self.coeffs.double()
        tangent = torch.stack([(c * k * (-1.0) ** (k - 1).clamp_min(0)).sum(1), (c * k).sum(1)], 1)
        if tails is None:
            return tangent.float()
        given = torch.as_tensor(tails, dtype=torch.float64).reshape(-1, 2) * ((self.hi - self.lo).double() / 2)[:, None]
        return torch.where(given.isnan(), tangent, given).float()

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        """Files written before tails were stored continue with the tangent, as they did."""
        if prefix + "coeffs" in state_dict and prefix + "tail_slope" not in state_dict:
            old = PolyActivation(state_dict[prefix + "coeffs"], state_dict[prefix + "lo"], state_dict[prefix + "hi"])
            state_dict[prefix + "tail_slope"] = old.tail_slope
        super()._load_from_state_dict(state_dict, prefix, *args)

    @property
    def size(self) -> int:
        """The degree."""
        return self.coeffs.shape[1] - 1

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype not in _OWN_DTYPES or x.device != self.lo.device:
            return self._in_float32(x)
        lo, hi = self._view(self.lo.to(x.dtype), x), self._view(self.hi.to(x.dtype), x)
        u = (2 * x - lo - hi) / (hi - lo)
        uc = torch.clamp(u, -1.0, 1.0)
        cs = [self._view(c.to(x.dtype), x) for c in self.coeffs.unbind(1)]
        y = cs[-1] * torch.ones_like(uc)
        for c in reversed(cs[:-1]):
            y = y * uc + c
        s_lo, s_hi = (self._view(t.to(x.dtype), x) for t in self.tail_slope.unbind(1))
        lower, upper = (self._view(b.to(x.dtype), x) for b in self.clamps.unbind(1))
        return y + torch.where(u < 0, s_lo, s_hi) * torch.clamp(u - uc, lower, upper)

    def flops_per_element(self) -> float:
        # normalise as one multiply-add (2), clamp (2), Horner for the value (2d),
        # tail line: pick the slope (1), multiply-add (3)
        return 8.0 + 2.0 * self.size
