"""``actlab search init|features|run|status|best WORKDIR``: surrogate-guided activation search."""

from __future__ import annotations

import argparse

from rich.table import Table

from actlab._console import console
from actlab.search.loop import FEATURE_SETS, best_functions, init_search, run_search
from actlab.search.state import STATUSES, SearchSettings, SearchState
from actlab.search.workers import compute_features


def _init(args: argparse.Namespace) -> None:
    state = init_search(args.workdir, schemas=args.schemas, equivalence=args.equivalence, dataset=args.dataset,
                        model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, max_attempts=args.max_attempts)
    c = state.space.counts
    print(f"{state.workdir}: {c['names']} functions, {c['finite']} finite, {c['unique']} unique "
          f"({state.settings.equivalence} equivalence); settings in {state.workdir / 'search_settings.json'}")
    state.close()


def _features(args: argparse.Namespace) -> None:
    state = SearchState(args.workdir)
    done = compute_features(state, progress=not args.no_progress)
    print(f"Fisher features: {done} computed, {len(state.names()) - len(state.missing_fisher())} stored")
    state.close()


def _run(args: argparse.Namespace) -> None:
    counts = run_search(args.workdir, args.budget, strategy=args.strategy, surrogate=args.surrogate,
                        features=args.features, epsilon=args.epsilon, seed=args.seed, workers=args.workers,
                        ray=args.ray, ray_address=args.ray_address, num_cpus=args.num_cpus,
                        progress=not args.no_progress, device=args.device)
    print(", ".join(f"{k} {v}" for k, v in counts.items() if k != "queued"))
    _best(argparse.Namespace(workdir=args.workdir, k=5))


def _status(args: argparse.Namespace) -> None:
    state = SearchState(args.workdir)
    counts = state.counts()
    counts["not asked for"] = counts["pending"] - counts["queued"]
    counts["pending"] = counts["queued"]
    table = Table(title=f"search {state.workdir}")
    columns = ["not asked for", *STATUSES]
    for key in columns:
        table.add_column(key, justify="right")
    table.add_row(*[str(counts[k]) for k in columns])
    console().print(table)
    print(f"asked for: {state.finished_count() + state.open_work()}; queued and not finished: {state.open_work()}")
    state.close()


def _best(args: argparse.Namespace) -> None:
    rows, relu = best_functions(args.workdir, args.k)
    relu_acc = relu["val_acc"] if relu else None
    caption = f"relu ({relu['rep']}): val {relu['val_acc']:.4f}, test {relu['test_acc']:.4f}" if relu else \
        "relu not trained yet"
    table = Table(title=f"best functions in {args.workdir}", caption=caption, caption_justify="left")
    for col in ("#", "function", "val acc", "test acc", "val - relu", "source"):
        table.add_column(col, justify="left" if col in ("function", "source") else "right")
    for i, r in enumerate(rows, 1):
        delta = f"{r['val_acc'] - relu_acc:+.4f}" if relu_acc is not None else "—"
        table.add_row(str(i), r["rep"], f"{r['val_acc']:.4f}", f"{r['test_acc']:.4f}", delta, r["source"] or "")
    console().print(table)


def add_search_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="surrogate-guided search of activation functions (state in WORKDIR)")
    cmds = p.add_subparsers(dest="search", required=True)

    c = cmds.add_parser("init", help="enumerate the space and save the training settings")
    c.add_argument("workdir", help="the search work directory to create")
    c.add_argument("--schemas", nargs="+", default=list(SearchSettings().schemas),
                   help="expression schemas the space is enumerated from")
    c.add_argument("--equivalence", default="exact", help="exact or tol (default: exact)")
    c.add_argument("--dataset", default="mnist10k", help="dataset spec (default: mnist10k)")
    c.add_argument("--model", default="cnn", help="model spec (default: cnn)")
    c.add_argument("--epochs", type=int, default=2, help="epochs each function is trained for")
    c.add_argument("--batch-size", type=int, default=64, help="training batch size")
    c.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    c.add_argument("--seed", type=int, default=0, help="seed of every training and of the features")
    c.add_argument("--max-attempts", type=int, default=3, help="tries per function that raises")
    c.set_defaults(fn=_init)

    c = cmds.add_parser("features", help="Fisher features of every function (resumable)")
    c.add_argument("workdir", help="a search work directory (actlab search init)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(fn=_features)

    c = cmds.add_parser("run", help="search until BUDGET functions (baselines included) are trained")
    c.add_argument("workdir", help="a search work directory (actlab search init)")
    c.add_argument("--budget", type=int, required=True, help="functions to train in this call, baselines included")
    c.add_argument("--strategy", default="surrogate", help="surrogate or random (default: surrogate)")
    c.add_argument("--surrogate", default="umap_knn", help="umap_knn, pca_knn or pca_gp (default: umap_knn)")
    c.add_argument("--features", default="both", help=f"{', '.join(FEATURE_SETS)} (default: both)")
    c.add_argument("--epsilon", type=float, default=0.0, help="probability of a random pick (exploration)")
    c.add_argument("--seed", type=int, default=0, help="seed of the surrogate and of random picks")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, help="local worker processes (0: this process)")
    where.add_argument("--ray", action="store_true", help="train on a local Ray instance")
    where.add_argument("--ray-address", help="train on the Ray cluster at this address")
    c.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: 1)")
    c.add_argument("--device", help="where functions train, e.g. cuda (default: the CPU; Fisher features stay "
                   "on the CPU)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(fn=_run)

    c = cmds.add_parser("status", help="how many functions are pending, running, done, failed, diverged")
    c.add_argument("workdir", help="a search work directory")
    c.set_defaults(fn=_status)

    c = cmds.add_parser("best", help="the best functions found, next to relu")
    c.add_argument("workdir", help="a search work directory")
    c.add_argument("-k", type=int, default=10, help="how many of the best functions to list")
    c.set_defaults(fn=_best)
