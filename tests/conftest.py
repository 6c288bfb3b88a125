import os

import pytest
import torch

# Tests run on 2-core CI machines next to nothing else; one thread avoids
# oversubscription when pytest and torch both try to use every core.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
