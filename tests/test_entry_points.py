"""Functions stay narrow and short: at most 10 parameters and 80 lines each (``self``/``cls`` not counted), checked
on the source with ``ast``. A function that needs more takes an options dataclass (``EvaluationOptions``,
``CohortSpec``, ``BenchmarkRequest``, the predictor's options) or is split into steps.

The one exception: network constructors, which nnU-Net calls with the plans' ``arch_kwargs`` (the keyword set of
dynamic-network-architectures' ``PlainConvUNet``), and the blocks that take the same conv/norm/nonlin arguments.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_PARAMETERS, MAX_LINES = 10, 80
#: (module path, qualified name): nnU-Net builds these from arch_kwargs, so their keywords are nnU-Net's
ARCH_KWARGS_CONSTRUCTORS = {
    ("nnunet_thrombus/networks/unet_parts.py", "ThrombusUNetBase.__init__"),
    ("nnunet_thrombus/networks/coarse_net.py", "ThrombusCoarseUNet.__init__"),
    ("nnunet_thrombus/networks/fine_net.py", "ThrombusFineUNet.__init__"),
    ("nnunet_thrombus/networks/cascade_net.py", "ThrombusCascadeNet.__init__"),
    ("nnunet_thrombus/networks/pyramid_fusion.py", "ScaleAwarePyramidFusion.__init__"),
}


def function_sizes(source: str):
    """(qualified name, parameters, lines) of every function and method in ``source``."""
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = child.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                n = len(names) + (a.vararg is not None) + (a.kwarg is not None)
                out.append((prefix + child.name, n, child.end_lineno - child.lineno + 1))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
    visit(ast.parse(source), "")
    return out


def too_big(root: Path, packages=("nnunet_thrombus", "dataset_conversion"), allowed=frozenset()):
    bad = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for name, n_params, n_lines in function_sizes(path.read_text(encoding="utf-8")):
                if (rel, name) in allowed:
                    continue
                if n_params > MAX_PARAMETERS or n_lines > MAX_LINES:
                    bad.append(f"{rel}::{name}: {n_params} parameters, {n_lines} lines")
    return bad


def test_no_function_over_10_parameters_or_80_lines():
    assert too_big(REPO, allowed=ARCH_KWARGS_CONSTRUCTORS) == []


def test_the_allowed_constructors_still_exist():
    """An allow-list entry whose function was renamed or narrowed must go, so the list never hides a new one."""
    sizes = {}
    for rel, _ in ARCH_KWARGS_CONSTRUCTORS:
        sizes.update({(rel, name): n for name, n, _ in function_sizes((REPO / rel).read_text(encoding="utf-8"))})
    assert all(sizes.get(key, 0) > MAX_PARAMETERS for key in ARCH_KWARGS_CONSTRUCTORS), sizes


def test_the_checker_finds_planted_violations(tmp_path):
    pkg = tmp_path / "nnunet_thrombus"
    pkg.mkdir()
    wide = ", ".join(f"a{i}" for i in range(11))
    long_body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (pkg / "m.py").write_text(f"def wide({wide}):\n    pass\n\n\ndef long():\n{long_body}\n\n\n"
                              "class C:\n    def ok(self, a, b, c, d, e, f, g, h, i, j):\n        pass\n")
    assert too_big(tmp_path, packages=("nnunet_thrombus",)) == [
        "nnunet_thrombus/m.py::wide: 11 parameters, 2 lines", "nnunet_thrombus/m.py::long: 0 parameters, 81 lines"]
