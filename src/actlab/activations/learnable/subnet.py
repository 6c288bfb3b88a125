"""A tiny network applied elementwise: 1 -> H -> ... -> H -> 1.

Each scalar of the input goes through ``depth`` hidden layers of width
``hidden`` with nonlinearity ``inner`` (any activation spec), trained jointly
with the model, as in "network in network" activations. The first layer is a
broadcast ``x[..., None] * w + b`` rather than an ``nn.Linear`` on a reshaped
(N*C*H*W, 1) tensor, which avoids a copy and handles per-channel weights for
free. Plain autograd: the hidden activations (H per element) are saved, so a
site costs about ``H + 1`` input-sized tensors of training memory. One hidden
layer of tanh or relu units (up to 64) runs as a fused C++ kernel instead where
the kernels can (``_autograd_subnet``), saving only the input.
Scriptable with ``torch.jit.script`` when ``inner`` is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.activations.flops import TRANSCENDENTAL, flops_per_element
from actlab.activations.learnable import _fit
from actlab.activations.learnable._autograd_subnet import SubnetFn, fused_act, takes
from actlab.activations.learnable._base import LearnableActivation
from actlab.activations.learnable._sharing import bcast, units
from actlab.activations.registry import make_activation, register_activation
from actlab.activations.sites import Site
from actlab.errors import SpecError


def subnet_flops(hidden: int, depth: int = 1, act_flops: float = TRANSCENDENTAL) -> float:
    """A 1 -> H -> ... -> H -> 1 network per element with ``depth`` hidden layers:
    2H (input multiply-add) + (depth - 1) 2H^2 (hidden layers, with bias) + 2H (output)
    + depth H act_flops."""
    return 4.0 * hidden + (depth - 1) * 2.0 * hidden**2 + depth * hidden * act_flops


class Subnet(LearnableActivation):
    """x -> w_out . inner(... inner(w_in x + b_in) ...) + b_out, per element."""

    family = "subnet"
    unit_tensors = {"w_in": 0, "b_in": 0, "w_hidden": 1, "b_hidden": 1, "w_out": 0, "b_out": 0}

    def __init__(self, n_units: int = 1, hidden: int = 8, depth: int = 1, inner: str = "tanh") -> None:
        super().__init__(n_units)
        self.hidden, self.depth, self.inner_spec = hidden, depth, inner
        self.inner = make_activation(inner)
        g = torch.Generator().manual_seed(0)
        self.w_in = nn.Parameter(torch.randn(n_units, hidden, generator=g))
        self.b_in = nn.Parameter(torch.randn(n_units, hidden, generator=g))
        self.w_hidden = nn.Parameter(torch.randn(depth - 1, n_units, hidden, hidden, generator=g) / hidden**0.5)
        self.b_hidden = nn.Parameter(torch.zeros(depth - 1, n_units, hidden))
        self.w_out = nn.Parameter(torch.randn(n_units, hidden, generator=g) / hidden**0.5)
        self.b_out = nn.Parameter(torch.zeros(n_units))

    def _view(self, x: Tensor) -> list[int]:
        return [self.n_units] + [1] * (x.dim() - 2) + [self.hidden]

    def flops_per_element(self) -> float:
        return subnet_flops(self.hidden, self.depth, flops_per_element(self.inner))

    def _forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():  # the fused kernel (depth 1, tanh or relu); TorchScript skips this
            act = fused_act(self.inner_spec, self.depth, self.hidden)
            if act is not None:
                w_in, b_in = self._per_channel(self.w_in), self._per_channel(self.b_in)
                w_out, b_out = self._per_channel(self.w_out), self._per_channel(self.b_out)
                if takes(x, self.n_units, w_in, b_in, w_out, b_out):
                    return SubnetFn.apply(x, w_in, b_in, w_out, b_out, act)
            if torch.amp.is_autocast_available(x.device.type) and torch.is_autocast_enabled(x.device.type):
                with torch.autocast(x.device.type, enabled=False):  # a float32 input keeps float32 matmuls
                    return self._at_infinity(x, self._broadcast(x))
            return self._at_infinity(x, self._broadcast(x))
        return self._broadcast(x)

    def _at_infinity(self, x: Tensor, y: Tensor) -> Tensor:
        """Where an infinite input met inf - inf or 0 * inf (a NaN output), the limit instead
        (not in traced or compiled graphs, whose branches cannot depend on the data)."""
        if x.device.type == "meta" or torch._C._is_tracing() or torch.compiler.is_compiling():
            return y
        bad = torch.isnan(y) & torch.isinf(x)
        if not bad.any():
            return y
        lim = self._per_channel(self.limits()).to(y.dtype)
        return _Replace.apply(y, bad, torch.where(x > 0, bcast(lim[:, 1], x), bcast(lim[:, 0], x)))

    def limits(self) -> Tensor:
        """(units, 2), (G, 2) for groups: the function at -inf and +inf, in float64. Each pre-activation is
        followed as a line a x + c; ``inner`` maps it to a line again: a constant where it
        saturates (or a = 0), else its own asymptote, measured at +-1e6 and +-2e6.
        Summed at the output: +-inf where the slope is not 0, else the constant."""
        with torch.no_grad():
            side = torch.tensor([-1.0, 1.0], dtype=torch.float64).view(2, 1, 1)
            slope = side * self.w_in.double()  # (2, units, hidden): d pre / d |x|
            const = self.b_in.double().expand_as(slope)
            for i in range(self.depth):
                if i > 0:
                    w = self.w_hidden[i - 1].double()
                    slope = torch.einsum("sch,chk->sck", slope, w)
                    const = torch.einsum("sch,chk->sck", const, w) + self.b_hidden[i - 1].double()
                slope, const = self._through_inner(slope, const)
            w_out = self.w_out.double()
            a, c = (slope * w_out).sum(-1), (const * w_out).sum(-1) + self.b_out.double()
            return torch.where(a != 0, torch.sign(a) * float("inf"), c).t()

    def _through_inner(self, slope: Tensor, const: Tensor) -> tuple[Tensor, Tensor]:
        far = torch.tensor([-float("inf"), -2e6, -1e6, 1e6, 2e6, float("inf")], dtype=torch.float64)
        g = self.inner(far).double()
        lines = []  # (slope, intercept) of inner towards -inf and +inf
        for at_inf, near, farther, sign in ((g[0], g[2], g[1], -1.0), (g[5], g[3], g[4], 1.0)):
            if torch.isfinite(at_inf):
                lines.append((0.0, at_inf))
            else:
                s = (farther - near) / 1e6 * sign
                lines.append((s, near - s * 1e6 * sign))
        (s_lo, i_lo), (s_hi, i_hi) = lines
        at_zero = self.inner(const).double()
        new_slope = torch.where(slope > 0, s_hi * slope, torch.where(slope < 0, s_lo * slope, 0.0))
        new_const = torch.where(slope > 0, s_hi * const + i_hi, torch.where(slope < 0, s_lo * const + i_lo, at_zero))
        return new_slope, new_const

    def _broadcast(self, x: Tensor) -> Tensor:
        if self.n_units == 1:
            h = self.inner(torch.addcmul(self.b_in[0], x.unsqueeze(-1), self.w_in[0]))
            for i in range(self.depth - 1):
                flat = h.reshape(-1, self.hidden)  # (1, H) for a 0-d input
                h = self.inner(torch.addmm(self.b_hidden[i, 0], flat, self.w_hidden[i, 0]).view(h.shape))
            return torch.matmul(h, self.w_out[0]) + self.b_out[0]
        if x.dim() < 2 or x.shape[1] != self.n_units:
            raise ValueError(f"expected input with {self.n_units} channels on dim 1, got shape {x.shape}")
        view = self._view(x)
        w_in, b_in = self._per_channel(self.w_in), self._per_channel(self.b_in)
        w_hidden, b_hidden = self._per_channel(self.w_hidden, 1), self._per_channel(self.b_hidden, 1)
        h = self.inner(torch.addcmul(b_in.view(view), x.unsqueeze(-1), w_in.view(view)))
        for i in range(self.depth - 1):
            # (N, ..., C, 1, H) @ (C, H, H): each channel's own hidden matrix.
            hc = torch.matmul(h.movedim(1, -2).unsqueeze(-2), w_hidden[i]).squeeze(-2)
            h = self.inner(hc.movedim(-2, 1) + b_hidden[i].view(view))
        return (h * self._per_channel(self.w_out).view(view)).sum(-1) + self._per_channel(self.b_out).view(view[:-1])

    def _fit_single(self, xs: Tensor, ys: Tensor) -> dict[str, Tensor]:
        single = Subnet(1, self.hidden, self.depth, self.inner_spec).double()
        # Every other grid point: the fit is smooth at that resolution and twice as fast.
        x, target = xs[::2].reshape(-1, 1), ys[::2].reshape(-1, 1)
        _fit.lbfgs(list(single.parameters()), lambda: (single(x) - target).pow(2).mean())
        return {name: p.detach() for name, p in single.named_parameters()}

    def extra_repr(self) -> str:
        return f"{self._units_repr()}, hidden={self.hidden}, depth={self.depth}"


class _Replace(torch.autograd.Function):
    """where(bad, value, y), with the gradient passed to y everywhere: at an infinite input the
    broadcast path's backward gives the tail's slope (as the fused kernel's does), not 0."""

    @staticmethod
    def forward(ctx, y: Tensor, bad: Tensor, value: Tensor) -> Tensor:
        return torch.where(bad, value, y)

    @staticmethod
    def backward(ctx, g: Tensor):
        return g, None, None


@register_activation("subnet")
def subnet(site: Site | None = None, /, hidden: int = 8, depth: int = 1, inner: str = "tanh",
           sharing: str = "layer", groups: int | None = None, dim: int = 1, init: str = "relu",
           init_range: float | list = 3.0) -> nn.Module:
    """subnet(hidden=8, depth=1, inner=tanh, sharing=layer, dim=1, init=relu, init_range=3).

    ``sharing=group`` takes ``groups=G`` parameter sets (see ``_sharing``)."""
    for name, value in (("hidden", hidden), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"subnet {name} must be a positive integer, got {value!r}")
    module = Subnet(units(sharing, site, groups), hidden, depth, str(inner))
    module.initialise(str(init), init_range, (hidden, depth, str(inner)))
    module.share(sharing, site, dim, groups)
    return module
