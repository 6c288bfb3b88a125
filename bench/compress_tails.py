"""Compressed activations beyond their calibration range: issue 16's example and its neighbours.

``Linear(4, 8)`` then an activation whose parameters are perturbed (noise 0.5 x
N(0, 1), seed 0, so nothing is the default shape), compressed by
``compress_model`` on 512 standard-normal inputs, with the tails taken from the
target (``tails="target"``, the default) and from the fitted form's end
segments (``tails="edge"``, what actlab did before). Reported: the activation
and its compressed form at x = -8, -4, 4, 8; the site's max output change on
the recorded inputs x2 (the stress set); the model's max output change on the
inputs x2.

    python bench/compress_tails.py      # writes bench/results/compress_tails.{json,md}
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from actlab import make_activation
from actlab.compress import compress_model

FAR = torch.tensor([-8.0, -4.0, 4.0, 8.0])
SPECS = ["spline(knots=32)", "spline(knots=32,order=3)", "slaf(degree=6)", "rational", "gelu", "silu", "tanh"]
METHODS = {"pwl": {"knots": 64}, "cubic": {"knots": 32}, "poly": {"degree": 6}}
OUT = Path(__file__).parent / "results"


def case(spec: str, method: str, tails: str) -> dict:
    torch.manual_seed(0)
    act = make_activation(spec)
    with torch.no_grad():
        for p in act.parameters():
            p.add_(0.5 * torch.randn_like(p))
    model = nn.Sequential(nn.Linear(4, 8), act).eval()
    x = torch.randn(512, 4)
    new, report = compress_model(model, method=method, calibration=x, tails=tails, **METHODS[method])
    with torch.no_grad():
        target, table = act(FAR), new[1](FAR)
    site = report[0]
    return {"spec": spec, "method": method, "tails": tails, "size": site.size, "exact": site.exact,
            "range": [site.lo, site.hi], "target_far": target.tolist(), "compressed_far": table.tolist(),
            "far_max_error": float((target - table).abs().max()), "max_error_in_range": site.max_error,
            "site_stress_max": site.stress_max, "model_stress_max": report.model["stress"].max}


def main() -> None:
    rows = [case(s, m, t) for s in SPECS for m in METHODS for t in ("edge", "target")]
    lines = ["# Compressed activations beyond the calibration range", "",
             "`Linear(4, 8)` + a perturbed activation, compressed on 512 N(0, 1) inputs; tails from the target "
             "(`target`, default) or the end segments (`edge`, before). f(x) and the compressed form at "
             "x = -8, -4, 4, 8; max |change| of the site on its recorded inputs x2 and of the model on its inputs x2.",
             "", "| activation | method | tails | size | range | f at -8, -4, 4, 8 | compressed at -8, -4, 4, 8 "
             "| max error in range | site change, inputs x2 | model change, inputs x2 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        size = f"{r['size']}{' (exact)' if r['exact'] else ''}"
        lines.append(f"| {r['spec']} | {r['method']} | {r['tails']} | {size} | [{r['range'][0]:.2f}, {r['range'][1]:.2f}]"
                     f" | {', '.join(f'{v:.2f}' for v in r['target_far'])} | "
                     f"{', '.join(f'{v:.2f}' for v in r['compressed_far'])} | {r['max_error_in_range']:.2e} | "
                     f"{r['site_stress_max']:.3g} | {r['model_stress_max']:.3g} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "compress_tails.json").write_text(json.dumps(rows, indent=2))
    (OUT / "compress_tails.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
