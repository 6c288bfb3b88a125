"""Rounding error of the learnable families' fused kernels against float64, next to their float32 references.

Per spec: the module with its coefficients drawn N(0, 1) (seed 0), inputs 4 x N(0, 1)
of shape 4x3x50x50 (seed 0), one forward and backward with gradient N(0, 1). The
same module runs three ways: float32 on the kernels, float32 on the PyTorch
reference (``ACTLAB_KERNELS`` off) and float64 (the reference path). Reported: the
largest absolute difference from float64 of the output, the input gradient and
the coefficient gradient, each divided by the largest float64 value of it.

    python bench/kernel_error.py [--isa avx2]   # writes bench/results/kernel_error[_avx2].{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import FORCE_ENV, cpu_info, force_isa  # noqa: E402

from actlab import _cpp  # noqa: E402
from actlab.activations import Site, make_activation  # noqa: E402

SPECS = [f"slaf(degree={d},basis=rbf)" for d in (2, 4, 6, 9)] + \
        [f"slaf(degree={d},basis=fourier)" for d in (4, 8, 16, 24)] + ["slaf(degree=8,basis=chebyshev)", "rational"]
PARTS = ("y", "grad_x", "grad_coef")


def _run(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
    module = module.to(dtype)
    module.zero_grad()
    xx = x.to(dtype).clone().requires_grad_()
    y = module(xx)
    y.backward(g.to(dtype))
    grads = torch.cat([p.grad.reshape(-1) for p in module.parameters() if p.grad is not None])
    return [y.detach().double(), xx.grad.double(), grads.double()]


def errors(spec: str) -> dict:
    torch.manual_seed(0)
    module = make_activation(spec, Site(3, "conv"))
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    x, g = 4 * torch.randn(4, 3, 50, 50), torch.randn(4, 3, 50, 50)
    exact = _run(module, x, g, torch.float64)
    kernel = _run(module, x, g, torch.float32)
    with _cpp.kernels_disabled():
        reference = _run(module, x, g, torch.float32)

    def rel(a: list[torch.Tensor]) -> dict:
        return {k: float((v - e).abs().max() / e.abs().max()) for k, v, e in zip(PARTS, a, exact)}
    return {"spec": spec, "kernel": rel(kernel), "reference": rel(reference)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", choices=sorted(FORCE_ENV), help="run as on an AVX2-only CPU")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    force_isa(args.isa)
    rows = [errors(spec) for spec in SPECS]
    res = {"cpu": cpu_info(), "kernel_isa": _cpp.isa(), "rows": rows}
    lines = [f"CPU: {res['cpu']['name']} ({res['cpu']['isa']}); kernels built for {res['kernel_isa']}. "
             "Largest |error| against float64 over the largest float64 value; coefficients, inputs "
             "(4 x N(0, 1), 4x3x50x50) and gradient N(0, 1), seed 0.", "",
             "| spec | kernel y | grad x | grad coef | reference y | grad x | grad coef |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['spec']} | " + " | ".join(f"{r[w][k]:.1e}" for w in ("kernel", "reference") for k in PARTS) + " |"
              for r in rows]
    stem = "kernel_error" + ("_avx2" if args.isa else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
