"""The layers of the toolkit, kept: every import in every module (also the ones inside
functions) points down.

    nas.core                foundation: plain data and helpers
    costmodel | supernet    the simulator (no torch) | the supernet (no hardware)
    lut                     tables filled by the simulator
    nas.search              the search: takes perplexity and cost as inputs
    nas.pipeline, nas.verify, nas.calibrate, nas.report, nas.cli   the job, retraining a
                            front, calibrating a supernet, the report page, the command line:
                            on top
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("nas.cli", "nas.pipeline", "nas.verify", "nas.calibrate", "nas.report")

# package -> modules (and third-party packages) it must never import
FORBIDDEN = {
    "nas.core": ("costmodel", "supernet", "lut", "nas.search", *TOP, "torch", "deap",
                 "datasets", "numpy"),
    "costmodel": ("supernet", "lut", "nas.search", *TOP, "torch", "deap", "datasets"),
    "supernet": ("costmodel", "lut", "nas.search", *TOP, "deap"),
    "lut": ("supernet", "nas.search", *TOP, "torch", "deap", "datasets"),
    "nas.search": ("costmodel", "supernet", "lut", *TOP, "torch", "datasets"),
    "nas.pipeline": ("nas.cli",),
    "nas.verify": ("nas.cli",),
    "nas.report": ("nas.cli",),
    "nas.calibrate": ("nas.cli",),
}


def module_files(package: str) -> list[Path]:
    path = ROOT.joinpath(*package.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def imports_of(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in module_files(package):
        for name in imports_of(path):
            for bad in FORBIDDEN[package]:
                if name == bad or name.startswith(bad + "."):
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package):
    assert module_files(package), f"no modules found for {package}"
    assert violations(package) == []


def test_the_checker_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The walk must catch a lazy import: plant one and see it reported."""
    fake = tmp_path / "costmodel"
    fake.mkdir()
    (fake / "sneaky.py").write_text("def f():\n    import torch\n    from nas.cli import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(v.split(" imports ")[1] for v in violations("costmodel")) == \
        ["nas.cli", "torch"]


def test_simulator_and_tables_load_without_torch():
    code = ("import sys\n"
            "import costmodel.simulate, costmodel.profile, costmodel.sparsity, lut.table\n"
            "import nas.search.engine, nas.search.outputs, nas.pipeline, nas.cli\n"
            "from nas.cli import build_parser\n"
            "build_parser()\n"
            "print(sorted(m for m in ('torch', 'datasets', 'matplotlib') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert proc.stdout.strip() == "[]"
