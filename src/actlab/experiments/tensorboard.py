"""TensorBoard event files for a run: every scalar of the epoch record, and histograms."""

from __future__ import annotations

from pathlib import Path

from torch import nn


class TensorBoardLogger:
    def __init__(self, logdir: Path, model: nn.Module) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

        # a restarted run starts from its first epoch: an earlier attempt's events would show twice
        for stale in Path(logdir).glob("events.out.tfevents.*"):
            stale.unlink()

        self.writer = SummaryWriter(log_dir=str(logdir))
        self.model = model

    def log(self, record: dict) -> None:
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, epoch)
        for name, module in self.model.named_modules():
            if hasattr(module, "histograms"):
                for key, values in module.histograms().items():
                    self.writer.add_histogram(f"{name}/{key}", values.detach().flatten(), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
