import os

# Before numpy/torch load: spinning BLAS/OpenMP threads on a busy 2-core machine slow tests tenfold.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tests run on 2-core CI machines next to nothing else; one thread avoids
# oversubscription when pytest and torch both try to use every core.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
# Without a GPU the Triton kernels are tested in Triton's interpreter on CPU tensors
# (tests/triton_helpers.py); it must be on before their modules are imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
