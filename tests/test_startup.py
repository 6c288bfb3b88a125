"""`import actlab` stays light: the heavy optional stacks load where they are used, not at import."""

import json
import subprocess
import sys

import torch

from actlab import _cpp

HEAVY = ("matplotlib", "sklearn", "umap", "ray", "torch._dynamo")


def test_import_actlab_and_its_cli_load_no_plotting_search_or_compiler_stack():
    code = f"import json, sys, actlab, actlab.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_assume_constant_result_sets_the_marker_dynamo_reads():
    def ours():
        return True

    def theirs():
        return True

    _cpp.assume_constant_result(ours)
    torch.compiler.assume_constant_result(theirs)
    assert {k: v for k, v in vars(ours).items()} == {k: v for k, v in vars(theirs).items()}
