"""The import direction of ARCHITECTURE.md: no module of actlab imports a layer above its own.

A plain AST walk over ``src/actlab``, module-level and function-level imports alike, so
a lazy import cannot hide a dependency that points the wrong way.
"""

import ast
from pathlib import Path

import pytest

import actlab

SRC = Path(actlab.__file__).parent
# Lowest first. A module may import its own layer and the layers below; the parts
# (compress, annealing, search) use the layers below them and not each other.
LAYERS = [
    {"errors", "_registry", "spec", "plots", "_console", "_cpp", "_devices", "_triton", "_triton_lang"},  # the core: no layer of its own
    {"data"},
    {"activations"},
    {"models"},
    {"train"},
    {"store"},
    {"compress", "annealing", "search"},
    {"experiments"},
    {"cli", "demo", "registries", "__init__"},
]
PARTS = LAYERS[6]
# Allowed (module, layer it may import from) pairs that break the rule: none.
EXCEPTIONS: set[tuple[str, str]] = set()


def _unit(module: str) -> str:
    """The folder or top-level file of a dotted module name below ``actlab``."""
    return module.split(".")[0] if module else "__init__"


def _rank(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str):
    """(imported module below ``actlab``, line) for every import of actlab in the file."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the package of the file
                base = ".".join(["actlab", *package[: len(package) - node.level + 1], *filter(None, [base])])
            # "from actlab import X" imports the submodule X when there is one
            names = sorted({f"{base}.{a.name}" if base == "actlab" else base for a in node.names})
        else:
            continue
        for name in names:
            if name == "actlab" or name.startswith("actlab."):
                yield name.removeprefix("actlab").removeprefix("."), node.lineno


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def test_every_top_level_module_and_folder_has_a_layer():
    units = {_unit(m) for m in MODULES}
    placed = set().union(*LAYERS)
    assert units <= placed, f"add {sorted(units - placed)} to a layer in ARCHITECTURE.md and LAYERS"


def violations(path: Path, module: str) -> list[str]:
    """The imports of ``path`` (the file of ``module``) that point up, or across the parts."""
    unit, placed = _unit(module), set().union(*LAYERS)
    wrong = []
    for target, line in sorted(_imports(path, module), key=lambda t: t[1]):
        other = _unit(target)
        if other == unit or (module, other) in EXCEPTIONS:
            continue
        if other not in placed or _rank(other) > _rank(unit) or (unit in PARTS and other in PARTS):
            wrong.append(f"line {line}: actlab.{module} imports actlab.{target}".rstrip("."))
    return wrong


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own_or_another_part(module):
    wrong = violations(MODULES[module], module)
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_lazy_relative_and_package_imports(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text("import torch\nfrom actlab.errors import ActlabError\n"
                      "def f():\n    from actlab.compress.cost import model_cost\n"
                      "from ..experiments import runner\nimport actlab\n")
    found = [w.split(": ", 1)[1] for w in violations(source, "models.fake")]
    assert found == ["actlab.models.fake imports actlab.compress.cost",
                     "actlab.models.fake imports actlab.experiments", "actlab.models.fake imports actlab"]
    assert violations(source, "cli") == []
