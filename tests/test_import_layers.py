"""The package's layering (DESIGN.md section 2), checked on the source: every import statement, in-function ones
included, parsed with ``ast``; nothing is imported, so this runs in well under a second.

Units are the first level of the package (``nnunet_thrombus.inference``, ``nnunet_thrombus.model_folder``, ...) and
the top-level ``dataset_conversion`` package. ``LAYERS`` lists them lowest first: a unit may import units of lower
layers only. ``FORBIDDEN`` names the boundaries DESIGN.md spells out, so a failure says which rule broke. Every
check is also run on a small fake package with planted violations, so a checker that sees nothing cannot pass.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nnunet_thrombus", "dataset_conversion")

#: lowest first; a unit may import units of strictly lower layers (and itself)
LAYERS = (
    {"nnunet_thrombus", "nnunet_thrombus.vocabulary", "nnunet_thrombus.masks", "nnunet_thrombus.atomic_io",
     "nnunet_thrombus.nnunet_env", "nnunet_thrombus.console", "nnunet_thrombus.presets"},
    # deidentify: header allow-list and keyed mapping, below both the converter and predict's writers
    {"nnunet_thrombus.measure", "nnunet_thrombus.networks", "nnunet_thrombus.deidentify"},
    {"nnunet_thrombus.synthetic", "dataset_conversion", "nnunet_thrombus.calibration"},
    {"nnunet_thrombus.evaluation", "nnunet_thrombus.model_folder"},
    {"nnunet_thrombus.inference"},
    # the trainer validates with the ROI-restricted predictor of inference/
    {"nnunet_thrombus.training"},
    {"nnunet_thrombus.nnunet_ext", "nnunet_thrombus.benchmark", "nnunet_thrombus.demo", "nnunet_thrombus.pacs"},
    {"nnunet_thrombus.commands"},
    {"nnunet_thrombus.cli"},
)
#: (importer prefix, forbidden import prefix, why)
FORBIDDEN = (
    ("dataset_conversion", "nnunet_thrombus.synthetic", "a converter reads any export; our generator is one of many"),
    ("dataset_conversion", "nnunet_thrombus.evaluation", "a converter does not judge"),
    ("nnunet_thrombus.model_folder", "nnunet_thrombus.inference", "model_folder sits below inference"),
    ("nnunet_thrombus.evaluation", "nnunet_thrombus.inference", "evaluation judges outputs, whoever made them"),
    ("nnunet_thrombus.inference", "nnunet_thrombus.training", "inference loads trained models; it does not train"),
    ("nnunet_thrombus.calibration", "nnunet_thrombus.inference", "inference applies the fitted rules"),
    ("nnunet_thrombus.calibration", "nnunet_thrombus.training", "training fits the rules through calibration"),
    ("nnunet_thrombus.networks", "nnunetv2.training", "the blocks are reusable outside nnU-Net's trainer"),
    *((unit, "torch", "numpy/scipy/SimpleITK code, tested without a model")
      for unit in ("nnunet_thrombus.measure", "nnunet_thrombus.evaluation", "nnunet_thrombus.synthetic",
                   "dataset_conversion", "nnunet_thrombus.calibration", "nnunet_thrombus.masks",
                   "nnunet_thrombus.vocabulary")),
)
#: units whose in-function imports of the package must be none: they need no laziness (no torch, no nnU-Net)
NO_LAZY_PACKAGE_IMPORTS = ("nnunet_thrombus.measure", "nnunet_thrombus.evaluation", "nnunet_thrombus.synthetic",
                           "dataset_conversion", "nnunet_thrombus.calibration", "nnunet_thrombus.masks",
                           "nnunet_thrombus.vocabulary")


#: roots an import may load lazily, inside a function, without a comment: slow to import (torch, nnU-Net and what
#: builds on them, highdicom, matplotlib) or optional extras (ray, the DICOMweb client)
LAZY_ROOTS = frozenset({"torch", "nnunetv2", "batchgenerators", "batchgeneratorsv2", "dynamic_network_architectures",
                        "acvl_utils", "highdicom", "matplotlib", "ray", "dicomweb_client", "requests"})
#: units whose functions may import anything lazily: the CLI builds every parser on start, so each command
#: imports its library inside its ``run`` and ``--help`` stays instant
LAZY_UNITS = ("nnunet_thrombus.commands", "nnunet_thrombus.cli")


# ------------------------------------------------------------------------------------------------- the parser
def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module or module.name, line, inside a function) for every import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in in_function) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out += [(f"{target}.{a.name}", node.lineno, id(node) in in_function) for a in node.names]
    return out


def unit_of(module: str, packages=PACKAGES, root: Path = REPO) -> str | None:
    """The layering unit of a module or imported name (None outside ``packages``): ``dataset_conversion``, or
    ``nnunet_thrombus.<first level>`` when that is a module or package, else ``nnunet_thrombus`` itself (a name
    of its ``__init__``, such as ``__version__``)."""
    parts = module.split(".")
    if parts[0] not in packages:
        return None
    if parts[0] == "dataset_conversion" or len(parts) == 1:
        return parts[0]
    first = root / parts[0] / parts[1]
    if first.is_dir() or first.with_suffix(".py").is_file():
        return ".".join(parts[:2])
    return parts[0]


def import_graph(root: Path, packages=PACKAGES) -> list[tuple[str, str, str, int, bool]]:
    """(importer module, imported name, file, line, in function) for every import of every module of ``packages``."""
    rows = []
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            mod = module_name(root, path)
            rows += [(mod, target, str(path.relative_to(root)), line, lazy)
                     for target, line, lazy in imports_of(root, path)]
    return rows


def unit_cycles(rows, packages=PACKAGES, root: Path = REPO) -> list[list[str]]:
    """Strongly connected components (more than one unit) of the unit-level import graph."""
    graph: dict[str, set] = {}
    for mod, target, *_ in rows:
        a, b = unit_of(mod, packages, root), unit_of(target, packages, root)
        if a and b and a != b:
            graph.setdefault(a, set()).add(b)
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def violations(rows, forbidden=FORBIDDEN) -> list[str]:
    return [f"{file}:{line}: {mod} imports {target} ({why})"
            for mod, target, file, line, _ in rows for src, bad, why in forbidden
            if (mod == src or mod.startswith(src + ".")) and (target == bad or target.startswith(bad + "."))]


def upward_arrows(rows, layers=LAYERS, packages=PACKAGES, root: Path = REPO) -> list[str]:
    """Imports of a unit of the same or a higher layer (units within one layer do not import each other)."""
    rank = {unit: i for i, layer in enumerate(layers) for unit in layer}
    out = []
    for mod, target, file, line, _ in rows:
        a, b = unit_of(mod, packages, root), unit_of(target, packages, root)
        if not a or not b or a == b:
            continue
        if a not in rank or b not in rank:
            out.append(f"{file}:{line}: {a} or {b} has no layer in LAYERS")
        elif rank[b] >= rank[a]:
            out.append(f"{file}:{line}: {a} (layer {rank[a]}) imports {target} (layer {rank[b]})")
    return out


# -------------------------------------------------------------------------------------------------- the rules
@pytest.fixture(scope="module")
def rows():
    return import_graph(REPO)


def test_no_package_level_import_cycles(rows):
    assert unit_cycles(rows) == []


def test_no_upward_import(rows):
    assert upward_arrows(rows) == []


def test_named_boundaries_hold(rows):
    assert violations(rows) == []


def test_low_layers_import_the_package_at_module_top(rows):
    lazy = [f"{file}:{line}: {target}" for mod, target, file, line, in_fn in rows
            if in_fn and unit_of(target) and unit_of(mod) in NO_LAZY_PACKAGE_IMPORTS]
    assert lazy == []


def test_nothing_imports_the_cli(rows):
    assert [f"{file}:{line}" for mod, target, file, line, _ in rows
            if target.startswith("nnunet_thrombus.cli") and not mod.startswith("nnunet_thrombus.cli")] == []


def loads_slowly(root: Path, module: str, packages=PACKAGES, seen=None) -> bool:
    """Whether importing ``module`` loads a :data:`LAZY_ROOTS` package at module level (directly or through modules
    of ``packages``)."""
    if module.split(".")[0] in LAZY_ROOTS:
        return True
    if module.split(".")[0] not in packages:
        return False
    seen = set() if seen is None else seen
    for candidate in (module, module.rpartition(".")[0]):  # a module, or a name of one
        parts = candidate.split(".")
        path = root.joinpath(*parts).with_suffix(".py")
        if not path.is_file():
            path = root.joinpath(*parts, "__init__.py")
        if path.is_file():
            if candidate in seen:
                return False
            seen.add(candidate)
            return any(loads_slowly(root, target, packages, seen) for target, _, lazy in imports_of(root, path)
                       if not lazy)
    return False


def unexplained_lazy_imports(root: Path, packages=PACKAGES) -> list[str]:
    """Imports inside functions that load nothing slow or optional and carry no comment (on their lines or on the
    comment and import lines just above them) saying why they are there."""
    out = []
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            mod = module_name(root, path)
            if mod.startswith(LAZY_UNITS):
                continue
            lines = path.read_text(encoding="utf-8").splitlines()
            tree = ast.parse("\n".join(lines))
            for f in ast.walk(tree):
                if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(f):
                    if not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "level", 0):
                        continue
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                    if any(loads_slowly(root, n, packages) for n in names):
                        continue
                    above, k = [], node.lineno - 2
                    while k >= 0 and lines[k].strip().startswith(("#", "import ", "from ")):
                        above.append(lines[k])
                        k -= 1
                    if not any("#" in text for text in above + lines[node.lineno - 1:node.end_lineno]):
                        out.append(f"{path.relative_to(root)}:{node.lineno}: {names[0]}")
    return out


def test_imports_inside_functions_load_something_slow_or_say_why():
    assert unexplained_lazy_imports(REPO) == []


# ------------------------------------------------------------------------------- the checker catches violations
def _fake_package(root: Path, files: dict) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_a_planted_cycle_upward_arrow_and_forbidden_imports(tmp_path):
    _fake_package(tmp_path, {
        "nnunet_thrombus/__init__.py": "",
        "nnunet_thrombus/model_folder.py": "def f():\n    from nnunet_thrombus.inference.x import y  # hidden\n",
        "nnunet_thrombus/inference/__init__.py": "",
        "nnunet_thrombus/inference/x.py": "from ..model_folder import f\nimport torch\ny = 1\n",
        "nnunet_thrombus/measure/__init__.py": "import torch.nn\n",
        "nnunet_thrombus/synthetic/__init__.py": "",
        "dataset_conversion/__init__.py": "",
        "dataset_conversion/discovery.py": "def g():\n    from nnunet_thrombus.synthetic.cohort import truth\n",
        "nnunet_thrombus/networks/__init__.py": "from nnunetv2.training.nnUNetTrainer import nnUNetTrainer\n",
    })
    rows = import_graph(tmp_path)
    # the relative import resolves, and the in-function import is seen
    assert ("nnunet_thrombus.inference.x", "nnunet_thrombus.model_folder.f") in {(r[0], r[1]) for r in rows}
    assert unit_cycles(rows, root=tmp_path) == [["nnunet_thrombus.inference", "nnunet_thrombus.model_folder"]]
    up = upward_arrows(rows, root=tmp_path)
    assert len(up) == 2 and "model_folder.py:2" in up[0] and "imports nnunet_thrombus.inference.x.y" in up[0]
    assert "dataset_conversion (layer 2) imports nnunet_thrombus.synthetic.cohort.truth (layer 2)" in up[1]
    found = violations(rows)
    assert any("model_folder imports nnunet_thrombus.inference" in v for v in found)
    assert any("measure imports torch.nn" in v for v in found)
    assert any("discovery.py:2: dataset_conversion.discovery imports nnunet_thrombus.synthetic" in v for v in found)
    assert any("networks imports nnunetv2.training" in v for v in found)
    assert not any("inference.x imports torch" in v for v in found)      # inference may use torch
    assert len(found) == 4


def test_checker_passes_a_clean_fake_package(tmp_path):
    _fake_package(tmp_path, {
        "nnunet_thrombus/__init__.py": "",
        "nnunet_thrombus/masks.py": "import numpy\n",
        "nnunet_thrombus/measure/__init__.py": "from nnunet_thrombus.masks import dice\n",
        "nnunet_thrombus/inference/__init__.py": "from ..measure import dice\nimport torch\n",
    })
    rows = import_graph(tmp_path)
    assert unit_cycles(rows, root=tmp_path) == [] and upward_arrows(rows, root=tmp_path) == []
    assert violations(rows) == []


def test_lazy_import_checker_finds_an_unexplained_one(tmp_path):
    _fake_package(tmp_path, {
        "nnunet_thrombus/__init__.py": "",
        "nnunet_thrombus/heavy.py": "import torch\n",
        "nnunet_thrombus/light.py": "import json\n",
        "nnunet_thrombus/use.py": ("def a():\n    import json\n\n\n"
                                   "def b():\n    from nnunet_thrombus.heavy import x\n\n\n"
                                   "def c():\n    # a cycle: light imports use\n    from nnunet_thrombus.light import y\n\n\n"
                                   "def d():\n    from nnunet_thrombus.light import z\n    import torch\n"),
        "nnunet_thrombus/commands/__init__.py": "",
        "nnunet_thrombus/commands/run.py": "def run():\n    import json\n",
    })
    assert unexplained_lazy_imports(tmp_path) == ["nnunet_thrombus/use.py:2: json",
                                                  "nnunet_thrombus/use.py:15: nnunet_thrombus.light"]
