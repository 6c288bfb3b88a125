"""Every registry by kind, for ``actlab list`` and for parametrised tests."""

from __future__ import annotations


def registries() -> dict[str, list[str]]:
    import actlab  # noqa: F401  (registers everything)
    from actlab.activations import ACTIVATIONS, ops
    from actlab.data import DATASETS
    from actlab.models import MODELS
    from actlab.train import LR_SCHEDULES

    regs = {
        "activations": ACTIVATIONS.names(),
        "operators": ops.operator_names(),
        "datasets": DATASETS.names(),
        "models": MODELS.names(),
        "lr_schedules": LR_SCHEDULES.names(),
    }
    try:
        from actlab.annealing.schedules import SCHEDULES

        regs["schedules"] = SCHEDULES.names()
    except ImportError:
        pass
    return regs
