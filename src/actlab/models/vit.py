"""A small Vision Transformer (Dosovitskiy et al. 2020, https://arxiv.org/abs/2010.11929).

Non-overlapping patches embedded by a strided convolution, a learned position
embedding, ``depth`` pre-norm blocks (attention, then an MLP dim -> dim *
mlp_ratio -> dim, each added to the residual stream) and a final LayerNorm.
The logits come from the mean of the tokens, not from a class token: no extra
token and as good for small ViTs (Beyer et al. 2022, "Better plain ViT
baselines for ImageNet-1k", https://arxiv.org/abs/2205.01580).

The MLP's activation is the block's one activation site, ``Site(hidden,
"dense", block)``. It is applied to the hidden tokens seen as (B * T, hidden)
rows, a view of the (B, T, hidden) tensor, so the site's features sit on dim 1
where actlab keeps per-unit parameters: ``sharing=channel`` (or neuron) gives
one parameter set per hidden feature with any activation, without ``dim=-1``.
The defaults suit 28x28 MNIST (7x7 patches of 4x4) and 32x32 CIFAR (8x8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from actlab.activations.sites import Site
from actlab.errors import ActlabError
from actlab.models.factory import MODELS


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, act: Callable[[Site], nn.Module],
                 index: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act(Site(hidden, "dense", index))
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        # need_weights=False: scaled_dot_product_attention, without materialising the weights
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        h = self.fc1(self.norm2(x))
        h = self.act(h.reshape(-1, h.shape[-1])).reshape(h.shape)  # the site's features on dim 1
        return x + self.drop(self.fc2(self.drop(h)))


class ViT(nn.Module):
    def __init__(self, in_ch: int, size: tuple[int, int], num_classes: int, act: Callable[[Site], nn.Module],
                 patch: int, dim: int, depth: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.embed = nn.Conv2d(in_ch, dim, patch, patch)
        self.pos = nn.Parameter(torch.empty(1, (size[0] // patch) * (size[1] // patch), dim))
        nn.init.trunc_normal_(self.pos, std=0.02)  # ViT's init: small beside the unit-scale patch embeddings
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden, dropout, act, i) for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, T, dim)
        tokens = self.blocks(self.drop(tokens + self.pos))
        return self.head(self.norm(tokens).mean(1))


@MODELS.register("vit")
def vit(input_shape: tuple[int, ...], num_classes: int, act: Callable[[Site], nn.Module],
        patch: int = 4, dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0,
        dropout: float = 0.0) -> nn.Module:
    if len(input_shape) not in (2, 3):
        raise ActlabError(f"vit needs image inputs (height, width) or (channels, height, width), "
                          f"got shape {tuple(input_shape)}")
    patch, dim, depth, heads = int(patch), int(dim), int(depth), int(heads)
    if min(patch, dim, depth, heads) < 1 or float(mlp_ratio) <= 0:
        raise ValueError("patch, dim, depth, heads and mlp_ratio must be positive")
    if dim % heads:
        raise ValueError(f"dim={dim} must be a multiple of heads={heads}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    height, width = input_shape[-2:]
    if height % patch or width % patch:
        raise ActlabError(f"vit(patch={patch}) needs image sides divisible by the patch, got {height}x{width}")
    in_ch = input_shape[0] if len(input_shape) == 3 else 1
    hidden = max(1, round(dim * float(mlp_ratio)))
    return ViT(in_ch, (height, width), num_classes, act, patch, dim, depth, heads, hidden, float(dropout))
