"""Triton device functions shared by actlab's kernels (imported by the kernel modules only).

``tile`` gives a program its [BJ, BC] tile of the input (see :mod:`actlab._triton`);
``store_partial`` writes the tile's sum of a parameter-gradient term for its columns.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tile(C, S, n_j, BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr):
    """This program's element offsets [BJ, BC] (int64), their mask, and its columns (channels) [BC]."""
    j = tl.program_id(0).to(tl.int64) * BJ + tl.arange(0, BJ)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    if FLAT:
        offs = j[:, None] + tl.zeros([1, BC], dtype=tl.int64)
        mask = (j < n_j)[:, None] & (c < C)[None, :]
    else:
        r = j // S
        s = j - r * S
        offs = r[:, None] * (C * S) + c[None, :].to(tl.int64) * S + s[:, None]
        mask = (j < n_j)[:, None] & (c < C)[None, :]
    return offs, mask, c


@triton.jit
def store_partial(part_ptr, term, mask, c, C, K: tl.constexpr, k):
    """partials[program j, c, k] = the tile's column sums of ``term`` (zero where masked, NaN kept)."""
    total = tl.sum(tl.where(mask, term, 0.0), axis=0)
    tl.store(part_ptr + (tl.program_id(0) * C + c) * K + k, total, mask=c < C)


@triton.jit
def column(p_ptr, c, C, K: tl.constexpr, k):
    """Parameter k of each column's unit, [1, BC] to broadcast over a tile (row-major (C, K) table)."""
    return tl.load(p_ptr + c * K + k, mask=c < C, other=0.0)[None, :]
