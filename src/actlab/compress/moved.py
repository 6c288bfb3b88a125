"""A compressed activation whose channels are not on dim 1 (a transformer's (B, T, D)).

The compressed forms keep per-channel tables along dim 1, where their kernels
expect them. A site of an activation with ``channel_dim=-1`` (see
:mod:`actlab.activations.learnable._sharing`) is replaced by the compressed
form inside :class:`ChannelsMoved`, which moves the channels to dim 1 and back:
a free reshape when they are last. Layer-shared sites need no wrapper.
"""

from __future__ import annotations

from torch import Tensor, nn


class ChannelsMoved(nn.Module):
    """``inner`` applied with the channels of the input (at ``dim``) moved to dim 1."""

    is_activation = True

    def __init__(self, inner: nn.Module, dim: int) -> None:
        super().__init__()
        self.inner, self.dim = inner, int(dim)

    def forward(self, x: Tensor) -> Tensor:
        d = self.dim % x.dim() if x.dim() else 1
        if x.dim() < 2 or d == 1:
            return self.inner(x)
        if d == x.dim() - 1:
            return self.inner(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return self.inner(x.movedim(d, 1)).movedim(1, d)

    def flops_per_element(self) -> float:
        return self.inner.flops_per_element()

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
