"""Fixed activations by name (relu, gelu, ...), as ``nn.Module``s.

Where torch has a module we use it (fast kernels, TorchScript-able); the
grammar's own definitions fill the gaps, so ``make_activation("hard_sigmoid")``
and the expression ``hard_sigmoid(x)`` are the same function.
"""

from __future__ import annotations

from torch import Tensor, nn

from actlab.activations import ops
from actlab.activations.registry import register_activation
from actlab.activations.sites import Site


class HardSigmoid(nn.Module):
    """TensorFlow 2's ``clip(0.2 x + 0.5, 0, 1)`` (torch's ``Hardsigmoid`` uses 1/6)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.hard_sigmoid(x)


def _simple(name: str, cls: type[nn.Module], *aliases: str) -> None:
    def factory(site: Site | None = None, /) -> nn.Module:
        return cls()

    factory.__doc__ = f"{cls.__name__}()"
    register_activation(name, *aliases)(factory)


_simple("relu", nn.ReLU)
_simple("selu", nn.SELU)
_simple("sigmoid", nn.Sigmoid)
_simple("tanh", nn.Tanh)
_simple("silu", nn.SiLU, "swish")
_simple("mish", nn.Mish)
_simple("softsign", nn.Softsign)
_simple("hard_sigmoid", HardSigmoid)
_simple("hardsigmoid", nn.Hardsigmoid)
_simple("hardswish", nn.Hardswish)
_simple("hardtanh", nn.Hardtanh)
_simple("relu6", nn.ReLU6)
_simple("identity", nn.Identity, "linear")
_simple("log_sigmoid", nn.LogSigmoid)
_simple("tanhshrink", nn.Tanhshrink)


@register_activation("leaky_relu")
def leaky_relu(site: Site | None = None, /, negative_slope: float = 0.01) -> nn.Module:
    return nn.LeakyReLU(float(negative_slope))


@register_activation("elu")
def elu(site: Site | None = None, /, alpha: float = 1.0) -> nn.Module:
    return nn.ELU(float(alpha))


@register_activation("celu")
def celu(site: Site | None = None, /, alpha: float = 1.0) -> nn.Module:
    return nn.CELU(float(alpha))


@register_activation("gelu")
def gelu(site: Site | None = None, /, approximate: str = "none") -> nn.Module:
    return nn.GELU(approximate=str(approximate))


@register_activation("softplus")
def softplus(site: Site | None = None, /, beta: float = 1.0) -> nn.Module:
    return nn.Softplus(beta=float(beta))
