"""Compressed models outside actlab: ONNX Runtime and torch.export programs give PyTorch's outputs.

Models are compressed with ``fast="eager"``: PyTorch then evaluates the
reference formula, with no kernel build or ``torch.compile`` to wait for;
that the kernel and compiled paths equal the formula is tested with them.
"""

import operator
import sys

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from actlab.activations import Site, make_activation  # noqa: E402
from actlab.compress import compress_model, export_onnx, onnx_session  # noqa: E402
from actlab.compress.export import _custom_ops  # noqa: E402
from actlab.errors import ActlabError  # noqa: E402
from actlab.models import make_model  # noqa: E402

SLAF = "slaf(degree=4,basis=chebyshev,sharing={})"
SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, 1e30, -1e30, 3.0, -50.0]


def _mixed_sharing(site: Site) -> nn.Module:
    """A SLAF shared by the layer at even sites and with parameters per channel at odd ones,
    its coefficients perturbed so that every channel has its own function."""
    act = make_activation(SLAF.format("layer" if site.index % 2 == 0 else "channel"), site)
    with torch.no_grad():
        for p in act.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return act


def _compressed(model: nn.Module, x: torch.Tensor, method: str = "pwl", **size) -> nn.Module:
    size = size or ({"degree": 6} if method == "poly" else {"knots": 32})
    small, _ = compress_model(model, method=method, calibration=x, fast="eager", **size)
    return small.eval()


def _ort_outputs(path, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(onnx_session(path).run(None, {"input": x.numpy()})[0])


def _assert_standard_ops(path) -> None:
    domains = {(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node}
    assert {d for d, _ in domains} <= {"", "ai.onnx"}, domains


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = make_model("cnn(channels=4)", (1, 28, 28), 10, activation=_mixed_sharing).eval()
    return model, torch.randn(32, 1, 28, 28)


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_pwl_model_with_per_layer_and_per_channel_tables_gives_pytorch_logits_in_onnxruntime(name, cnn, tmp_path):
    if name == "cnn":
        model, x = cnn
    else:
        model, x = make_model("mlp(widths=[24,16])", (20,), 10, activation=_mixed_sharing).eval(), torch.randn(256, 20)
    small = _compressed(model, x)
    tables = [m.values.shape[0] for m in small.acts]
    assert tables[0] == 1 and tables[1] > 1  # a per-layer and a per-channel table
    path = export_onnx(small, tmp_path / f"{name}.onnx", x[:1])
    _assert_standard_ops(path)
    for batch in (1, 7):  # exported at batch 1: the batch dimension is dynamic
        with torch.no_grad():
            expected = small(x[:batch])
        torch.testing.assert_close(_ort_outputs(path, x[:batch]), expected, atol=1e-4, rtol=0)


def test_user_sequential_with_gelu_exports_and_matches_and_keeps_its_training_mode(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.GELU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    x = torch.randn(32, 1, 28, 28)
    small = _compressed(model, x, knots=64).train()
    path = export_onnx(small, tmp_path / "deep" / "gelu.onnx", x[:3])
    assert small.training and small[1].training  # eval only while exporting
    _assert_standard_ops(path)
    small.eval()
    for batch in (1, 7):
        with torch.no_grad():
            expected = small(x[:batch])
        torch.testing.assert_close(_ort_outputs(path, x[:batch]), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["pwl", "cubic", "poly"])
def test_torch_export_program_of_a_compressed_cnn_equals_the_module_and_uses_aten_ops_only(method, cnn):
    model, x = cnn
    small = _compressed(model, x, method)
    program = torch.export.export(small, (x[:4],))
    targets = {n.target for n in program.graph.nodes if n.op == "call_function"} - {operator.getitem}
    assert {getattr(t, "namespace", None) for t in targets} == {"aten"}, targets
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x[:4]), small(x[:4]), atol=1e-6, rtol=0)


class _Branches(nn.Module):
    """Several activations applied to the same input, stacked: one export for all of them."""

    def __init__(self, acts):
        super().__init__()
        self.acts = nn.ModuleList(acts)

    def forward(self, x):
        return torch.stack([act(x) for act in self.acts])


def test_nan_and_infinities_give_the_same_outputs_in_onnxruntime_as_in_pytorch(tmp_path):
    site, x = Site(4, "conv"), torch.randn(128, 4, 3)
    acts = [_compressed(_mixed_sharing(Site(4, "conv", index)), x, method)
            for method in ("pwl", "cubic", "poly") for index in (0, 1)]
    assert [a.channels for a in acts] == [1, 4] * 3
    model = _Branches(acts).eval()
    path = export_onnx(model, tmp_path / "special.onnx", x[:2])
    special = torch.tensor(SPECIAL)[:, None, None].expand(-1, site.num_features, 3).contiguous()
    with torch.no_grad():
        expected = model(special)
    assert expected[:, 0].isnan().all()  # NaN in, NaN out on every form
    assert expected[:, 1:3].isinf().any()  # the tail lines carry infinities through
    torch.testing.assert_close(_ort_outputs(path, special), expected, equal_nan=True, atol=1e-5, rtol=1e-5)


def test_custom_operators_are_found_in_the_graph_and_in_subgraphs():
    h = onnx.helper
    inner = h.make_graph([h.make_node("FusedGemm", ["a"], ["b"], domain="com.microsoft")], "inner", [], [])
    nodes = [h.make_node("Relu", ["x"], ["y"]), h.make_node("Abs", ["y"], ["z"], domain="ai.onnx"),
             h.make_node("If", ["c"], ["w"], then_branch=inner, else_branch=inner),
             h.make_node("Gelu", ["z"], ["v"], domain="com.microsoft")]
    assert _custom_ops(nodes) == ["com.microsoft::FusedGemm", "com.microsoft::Gelu"]


def test_an_export_with_a_custom_operator_raises_one_line_naming_it(monkeypatch, tmp_path):
    h = onnx.helper
    x, y = (h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in "xy")
    graph = h.make_graph([h.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], "g", [x], [y])
    custom = h.make_model(graph, opset_imports=[h.make_opsetid("", 20), h.make_opsetid("com.microsoft", 1)])
    monkeypatch.setattr(torch.onnx, "export", lambda model, args, f, **kw: onnx.save(custom, f))
    with pytest.raises(ActlabError, match="com.microsoft::Gelu") as info:
        export_onnx(nn.GELU(), tmp_path / "custom.onnx", torch.randn(2, 3))
    assert "\n" not in str(info.value)


def test_missing_onnx_asks_for_the_export_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ActlabError, match=r"pip install actlab\[export\]"):
        export_onnx(nn.ReLU(), tmp_path / "relu.onnx", torch.randn(2, 3))


def test_onnx_session_sets_its_threads_and_rejects_bad_arguments(tmp_path):
    h, path = onnx.helper, tmp_path / "tanh.onnx"
    x, y = (h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in "xy")
    onnx.save(h.make_model(h.make_graph([h.make_node("Tanh", ["x"], ["y"])], "g", [x], [y]),
                           opset_imports=[h.make_opsetid("", 20)]), path)
    options = onnx_session(path, threads=2).get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 2)
    with pytest.raises(ActlabError, match="threads"):
        onnx_session(path, threads=0)
    with pytest.raises(ActlabError, match="no ONNX file"):
        onnx_session(tmp_path / "missing.onnx")
