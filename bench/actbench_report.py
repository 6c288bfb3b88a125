"""Act-Bench-MNIST10k's figures for bench/results (issue 12, item 6).

The same figures as ``actlab report bench/out/actbench`` (its "Activation
search" section): the functions in the order they were trained with the best so
far, the UMAP map of every function's features coloured by validation accuracy
(grey: not trained yet), and the shapes of the best functions next to ReLU.

    python bench/actbench_report.py     # after bench/actbench.py; writes bench/results/actbench_*.png
"""

from __future__ import annotations

from pathlib import Path

from actlab.search.report import search_figures
from actlab.search.state import SearchState

ROOT = Path(__file__).parent


def main() -> None:
    state = SearchState(ROOT / "out" / "actbench")
    try:
        for name, fig in search_figures(state).items():
            path = ROOT / "results" / f"actbench_{name}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            print(path)
    finally:
        state.close()


if __name__ == "__main__":
    main()
