"""Devices (#23): the one-line error for an input on another device, ``--device`` everywhere
something trains or evaluates, and the whole pipeline on CUDA where a GPU is present.

Without a GPU the two devices of a mixed call are "meta" and "cpu"; the device paths are
exercised with ``device="cpu"`` given explicitly. The tests marked ``cuda`` compare CUDA
with the CPU and run the command line on CUDA; they are skipped without a GPU.
"""

from __future__ import annotations

import copy
import functools
import pickle
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab import _devices
from actlab.activations import Site, make_activation
from actlab.cli import main
from actlab.compress.fit import make_module
from actlab.errors import ActlabError, DeviceError
from actlab.models import make_model
from actlab.search.loop import run_search
from actlab.search.state import Outcome, SearchSettings, SearchState
from actlab.search.workers import train_function
from actlab.store import RunStore

from family_helpers import learnable_families

HAS_CUDA = torch.cuda.is_available()
CUDA = pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")])
DEVICES = ["cpu", CUDA]
MIXED = [("meta", "cpu"), ("cpu", "meta")]  # (the module's device, the input's)
CONFIG = 'name = "d"\ndatasets = ["moons"]\nmodels = ["mlp(widths=[8])"]\nactivations = ["{act}"]\nepochs = 1\n'


def _compressed(name: str) -> nn.Module:
    channels = 4 if name.endswith("per channel") else 1
    method = name.split()[0]
    lo, hi = torch.full((channels,), -3.0, dtype=torch.float64), torch.full((channels,), 3.0, dtype=torch.float64)
    return make_module(F.silu, lo, hi, method, {"pwl": 17, "cubic": 9, "poly": 5}[method]).eval()


def _assert_names_both_devices(info, module_device: str, input_device: str) -> None:
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, (ActlabError, RuntimeError))
    assert f"an input on {input_device}" in message and f"are on {module_device}" in message
    assert f"model.to('{input_device}')" in message


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("module_device,input_device", MIXED)
@pytest.mark.parametrize("family", [*learnable_families(), "slaf(sharing=channel)"])
def test_a_learnable_module_and_an_input_on_other_devices_raise_one_line_naming_both(family, module_device,
                                                                                    input_device, dtype):
    module = make_activation(family, Site(4, "conv")).to(module_device)
    x = torch.randn(2, 4, 3, device=input_device).to(dtype).requires_grad_()
    with pytest.raises(DeviceError) as info:
        module(x)
    _assert_names_both_devices(info, module_device, input_device)


def test_a_lazy_per_channel_module_on_another_device_than_its_first_input_raises_the_same_error():
    module = make_activation("rational(sharing=channel)").to("meta")  # no site: its units come from the input
    with pytest.raises(DeviceError, match="on cpu but its parameters are on meta"):
        module(torch.randn(2, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("module_device,input_device", MIXED)
@pytest.mark.parametrize("name", ["pwl", "cubic", "poly", "pwl per channel"])
def test_a_compressed_module_and_an_input_on_other_devices_raise_one_line_naming_both(name, module_device,
                                                                                     input_device, dtype):
    module = _compressed(name).to(module_device)
    for training in (False, True):  # the table's inference paths and its differentiable formula
        module.train(training)
        with pytest.raises(DeviceError) as info:
            module(torch.randn(2, 4, 3, device=input_device).to(dtype))
        _assert_names_both_devices(info, module_device, input_device)


def test_a_device_asked_for_resolves_or_is_one_line_for_a_typo_or_an_unreachable_device():
    assert _devices.resolve(None) is None and _devices.resolve("cpu") == torch.device("cpu")
    with pytest.raises(ActlabError, match=r"^unknown device 'tpu9' \(e\.g\. cpu, cuda, cuda:1\)$"):
        _devices.resolve("tpu9")
    if not HAS_CUDA:
        with pytest.raises(ActlabError, match="^device 'cuda' was asked for, but this torch sees no CUDA device$"):
            _devices.resolve("cuda")
    else:
        with pytest.raises(ActlabError, match=r"^device 'cuda:99' was asked for, but this torch sees \d+ CUDA"):
            _devices.resolve("cuda:99")


def test_ray_tasks_ask_for_a_share_of_the_gpus_only_on_cuda():
    assert _devices.ray_gpus(None, 4, 2) == 0 and _devices.ray_gpus(torch.device("cpu"), 4, 2) == 0
    assert _devices.ray_gpus(torch.device("cuda"), 4, 2) == 0.5 and _devices.ray_gpus(torch.device("cuda"), 1, 2) == 1
    with pytest.raises(ActlabError, match="Ray cluster has no GPU"):
        _devices.ray_gpus(torch.device("cuda"), 2, 0)
    assert _devices.ray_task_device(torch.device("cuda", 1)) == "cuda"  # a task's GPU is its only one
    assert _devices.ray_task_device(torch.device("cpu")) == "cpu" and _devices.ray_task_device(None) is None


def _bad_devices() -> list[tuple[str, str]]:
    cases = [("bogus", r"unknown device 'bogus' \(e\.g\. cpu, cuda, cuda:1\)")]
    if HAS_CUDA:
        cases.append(("cuda:99", r"device 'cuda:99' was asked for, but this torch sees \d+ CUDA devices?"))
    else:
        cases.append(("cuda", "device 'cuda' was asked for, but this torch sees no CUDA device"))
    return cases


@pytest.mark.parametrize("device,message", _bad_devices())
@pytest.mark.parametrize("command", ["run", "search run", "compress"])
def test_a_bad_device_on_the_command_line_is_one_line_and_exit_code_2(command, device, message, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(act="relu"))
    argv = {"run": ["run", str(cfg), "--workdir", str(tmp_path / "w"), "--no-progress"],
            "search run": ["search", "run", str(tmp_path / "s"), "--budget", "1"],
            "compress": ["compress", str(tmp_path / "w"), "0123"]}[command]
    assert main([*argv, "--device", device]) == 2
    assert re.fullmatch(f"actlab: error: {message}\n", capsys.readouterr().err)
    assert not (tmp_path / "w").exists() and not (tmp_path / "s").exists()  # found before any work


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_convert_compress_save_and_load_on_a_device(device, tmp_path):
    x = torch.randn(16, 1, 8, 8)
    model, sites = actlab.convert(_net().to(device), "slaf(degree=3)", x, sharing="channel")  # x moved for the dry run
    assert sites and {t.device.type for t in [*model.parameters(), *model.buffers()]} == {device}
    reference = model.eval()(x.to(device))
    small, report = actlab.compress_model(model, "pwl", knots=65, calibration=x)  # calibration on the CPU
    assert {t.device.type for t in [*small.parameters(), *small.buffers()]} == {device}
    assert report and report.model["calibration"].max < 0.05
    out = small.eval()(x.to(device))
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0)
    path = actlab.save(small, tmp_path / "m.pt")
    for where in ("cpu", device):
        back = actlab.load(path, _net, device=where).eval()
        assert {t.device.type for t in back.parameters()} == {where}
        torch.testing.assert_close(back(x.to(where)).cpu(), out.cpu(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ActlabError, match="unknown device"):
        actlab.load(path, _net, device="bogus")


def test_convert_of_a_model_on_meta_makes_its_activations_there_and_infers_shapes():
    model, sites = actlab.convert(_net().to("meta"), "spline(knots=8)", torch.zeros(2, 1, 8, 8), sharing="channel")
    assert sites and {p.device.type for p in model.parameters()} == {"meta"}
    y = model(torch.empty(5, 1, 8, 8, device="meta"))
    assert y.device.type == "meta" and y.shape == (5, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_run_then_compress_on_the_command_line_on_a_device(device, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(act="slaf(degree=3)"))
    work = tmp_path / "w"
    assert main(["run", str(cfg), "--workdir", str(work), "--no-progress", "--no-report", "--device", device]) == 0
    store = RunStore(work, create=False)
    (run,) = store.runs()
    store.close()
    assert run["status"] == "done"
    weights = torch.load(work / "checkpoints" / f"{run['run_id']}.pt", weights_only=True)
    assert {t.device.type for t in weights.values()} == {"cpu"}  # a checkpoint loads without the device
    assert main(["compress", str(work), run["run_id"], "--knots", "33", "--no-latency", "--device", device]) == 0
    store = RunStore(work, create=False)
    derived = [r for r in store.runs() if r["run_id"] != run["run_id"]]
    store.close()
    assert [r["status"] for r in derived] == ["done"] and "-> pwl(knots=33)" in derived[0]["config"]["activation"]


SEARCH = SearchSettings(schemas=["unary(x)"], dataset="moons(n_samples=200)", model="mlp(widths=[8])", epochs=1,
                        batch_size=50, lr=0.01, max_attempts=1)


def _record_device(expr: str, settings: SearchSettings, device: str | None = None) -> Outcome:
    return Outcome("done", 0.5, 0.5, 1.0, 0.01, error=f"device={device}")  # the error column carries it out


def test_the_search_gives_its_device_to_every_evaluation(tmp_path):
    SearchState.init(tmp_path, SEARCH).close()
    run_search(tmp_path, 3, strategy="random", workers=0, evaluator=_record_device, progress=False, device="cpu")
    state = SearchState(tmp_path)
    rows = state.rows(["done"])
    state.close()
    assert len(rows) == 3 and {r["error"] for r in rows} == {"device=cpu"}
    with pytest.raises(ActlabError, match="unknown device"):
        run_search(tmp_path, 3, device="bogus")


def test_the_default_evaluator_trains_on_the_device_and_pickles_for_worker_processes():
    evaluator = pickle.loads(pickle.dumps(functools.partial(train_function, device="cpu")))
    out = evaluator("relu(x)", SEARCH)
    assert out.status == "done" and 0.0 <= out.val_acc <= 1.0


@pytest.fixture
def _no_tf32():
    """Full float32 matmuls and convolutions on CUDA (TF32 rounds to 10 bits), for comparisons with the CPU."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("family", learnable_families())
def test_a_cnn_training_step_on_cuda_matches_the_cpu_with_every_learnable_family(family, _no_tf32):
    torch.manual_seed(0)
    models = {"cpu": make_model("cnn(channels=4)", (1, 10, 10), 3, f"{family}(sharing=channel)")}
    models["cuda"] = copy.deepcopy(models["cpu"]).cuda()
    x, labels = torch.randn(16, 1, 10, 10), torch.randint(0, 3, (16,))
    losses = {}
    for device, model in models.items():
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = F.cross_entropy(model(x.to(device)), labels.to(device))
        loss.backward()
        opt.step()
        losses[device] = loss.detach().cpu()
    torch.testing.assert_close(losses["cuda"], losses["cpu"], rtol=1e-4, atol=1e-5)
    cpu_params = dict(models["cpu"].named_parameters())
    for name, p in models["cuda"].named_parameters():
        ref = cpu_params[name]
        scale = float(ref.grad.abs().max()) + 1e-12
        torch.testing.assert_close(p.grad.cpu(), ref.grad, rtol=1e-3, atol=1e-4 * scale, msg=name)
        torch.testing.assert_close(p.detach().cpu(), ref.detach(), rtol=1e-4, atol=1e-5, msg=name)
