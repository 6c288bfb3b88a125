"""Report details: one seed shows n = 1, integer epoch ticks, legends off the data, PNGs beside the page."""

from matplotlib.backends.backend_agg import FigureCanvasAgg

from actlab.experiments import parse_config, run_experiment
from actlab.experiments.report import write_report
from actlab.experiments.results import fmt_pm, run_rows, summary_rows
from actlab.plots import curves_plot
from actlab.store import RunStore


def _histories(groups: int, epochs: int = 3) -> dict:
    return {f"g{i}": [[{"val_acc": 0.5 + 0.1 * e + 0.01 * i} for e in range(epochs)]] for i in range(groups)}


def test_a_single_seed_shows_n_equals_1_and_no_spread():
    assert fmt_pm(0.9, float("nan")) == "90.00 (n = 1)"
    assert fmt_pm(0.9, 0.01) == "90.00 ± 1.00"
    rows = [{"experiment": "e", "dataset": "d", "model": "m", "activation": "relu", "seed": 0, "status": "done",
             "test_acc": 0.9, "test_f1": 0.9, "train_time": 1.0, "params": 10}]
    (s,) = summary_rows(rows)
    assert s["seeds"] == 1 and s["test_acc_std"] != s["test_acc_std"]  # NaN, not 0


def test_epoch_ticks_are_whole_numbers():
    fig = curves_plot(_histories(2, epochs=3), "val_acc")
    FigureCanvasAgg(fig).draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_legend_with_more_than_four_lines_sits_outside_the_axes():
    for groups, outside in ((3, False), (6, True)):
        fig = curves_plot(_histories(groups), "val_acc")
        FigureCanvasAgg(fig).draw()
        ax = fig.axes[0]
        legend_box, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert (legend_box.x0 >= axes_box.x1) == outside


def test_the_report_saves_every_figure_as_png_and_compares_with_relu(tmp_path):
    cfg = parse_config({"name": "r", "datasets": ["moons"], "models": ["mlp(widths=[8])"],
                        "activations": ["relu", "tanh"], "seeds": [0, 1], "epochs": 2, "lr": 0.01})
    run_experiment(cfg, tmp_path, progress=False).close()
    page = write_report(tmp_path).read_text()
    pngs = sorted((tmp_path / "report_figures").glob("*.png"))
    assert len(pngs) == page.count("<img") and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert "Δ acc vs relu" in page and "p (Holm)" in page
    store = RunStore(tmp_path)
    assert {r["activation"] for r in run_rows(store)} == {"relu", "tanh"}
    store.close()
