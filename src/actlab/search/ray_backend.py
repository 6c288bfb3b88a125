"""Training functions as Ray tasks; the driver claims and records them in the SQLite state.

``address=None`` starts a private local Ray instance (and shuts it down at the
end); an address joins an existing cluster, which stays up. The driver holds
the claims and renews their leases while the tasks run, so a driver killed
mid-search leaves rows that the next run takes over (its pid is gone).
"""

from __future__ import annotations

import time
from pathlib import Path

from actlab import _devices
from actlab.errors import ActlabError
from actlab.search.state import Claim, Outcome, SearchSettings, SearchState, worker_id
from actlab.search.workers import Evaluator, evaluate


def _task(expr: str, settings: SearchSettings, evaluator: Evaluator, threads: int) -> Outcome:
    import torch

    torch.set_num_threads(threads)
    return evaluate(expr, settings, evaluator)


class RayBackend:
    """Up to one task per CPU of the Ray instance in flight; on a CUDA ``device`` (a
    ``torch.device``) each asks for its share of the cluster's GPUs (``_devices.ray_gpus``)."""

    def __init__(self, workdir: Path, evaluator: Evaluator, address: str | None = None, num_cpus: int = 1,
                 threads: int = 1, device=None) -> None:
        try:
            import ray
        except ImportError:
            raise ActlabError("--ray needs Ray: pip install 'ray[default]'") from None
        self.ray, self.evaluator, self.threads = ray, evaluator, threads
        self.owns = not ray.is_initialized()
        if self.owns:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            except ConnectionError as exc:
                raise ActlabError(f"cannot join the Ray cluster at {address}: {exc}") from None
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        try:
            gpus = _devices.ray_gpus(device, self.capacity, ray.cluster_resources().get("GPU", 0))
        except ActlabError:
            if self.owns:
                ray.shutdown()
            raise
        self.remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(_task)
        self.worker = worker_id("ray-driver")
        self.inflight: dict[object, Claim] = {}
        self.last_beat = time.time()

    def step(self, state: SearchState) -> None:
        while len(self.inflight) < self.capacity:
            claim = state.claim(self.worker)
            if claim is None:
                break
            ref = self.remote.remote(claim.rep, state.settings, self.evaluator, self.threads)
            self.inflight[ref] = claim
        if not self.inflight:
            time.sleep(0.2)  # what is open is held by other workers
            return
        ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
        for ref in ready:
            claim = self.inflight.pop(ref)
            try:
                out = self.ray.get(ref)
            except Exception as exc:  # the task's worker died or could not unpickle the evaluator
                out = Outcome("failed", error=f"ray task failed: {type(exc).__name__}: {exc}"[:500])
            state.record(claim, out)
        if time.time() - self.last_beat > state.settings.lease_s / 4:
            for claim in self.inflight.values():
                state.heartbeat(claim)
            self.last_beat = time.time()

    def close(self, state: SearchState) -> None:
        for ref, claim in self.inflight.items():
            self.ray.cancel(ref, force=True)
            state.release(claim)
        self.inflight.clear()
        if self.owns:
            self.ray.shutdown()
