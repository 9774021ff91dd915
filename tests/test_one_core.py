"""One core for the papers' quantizers: no package (and no other core module) defines its own
sign, Heaviside, straight-through or k-bit quantizer, and ``clip_weights_`` exists once.

The check reads the sources (``ast``): a function or class whose name says sign, Heaviside,
step or straight-through, an ``autograd.Function`` whose forward compares or signs its input,
and the primitives such functions are made of (``torch.sign``, ``.sign_()``, ``torch.round``,
``hardtanh_backward``) are refused outside ``bnn_shared/quantizers.py``. Each allowed
exception names why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUANTIZERS = ROOT / "shared" / "src" / "bnn_shared" / "quantizers.py"
SOURCES = sorted(
    p
    for p in [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")]
    if p != QUANTIZERS
)
NAME = re.compile(r"(?i:(^|_)(hard_?sign|sign(sat|unsat|tanh)?|heaviside|ste)($|_))|STE")
PRIMITIVES = re.compile(r"torch\.sign\(|\.sign_\(|\.sign\(\)|torch\.round\(|hardtanh_backward")
#: (file name, primitive) pairs that are not quantizers, with the reason.
ALLOWED = {
    # Bop's flip rule compares sign(w) with the momentum: an optimizer, not a quantizer
    ("optim.py", ".sign()"),
    # hadamrnn's integer-only model turns weights that are already quantized into their
    # integer codes, and scales into fixed-point constants: conversions, not quantizers
    ("integer.py", "torch.round("),
}


def _definitions(tree: ast.AST):
    """Functions, and classes that are autograd functions (a quantizer's usual shape)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            or isinstance(node, ast.ClassDef)
            and any(ast.unparse(base).endswith("Function") for base in node.bases)
        ):
            yield node


def test_no_quantizer_defined_outside_the_core_quantizers():
    found = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for node in _definitions(ast.parse(text)):
            if NAME.search(node.name):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} defines {node.name}")
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for match in PRIMITIVES.finditer(code):
                if (path.name, match.group()) not in ALLOWED:
                    found.append(f"{path.relative_to(ROOT)}:{number} uses {match.group()}")
    assert not found, "quantizer code outside bnn_shared/quantizers.py:\n" + "\n".join(found)


def test_one_clip_weights():
    defining = [
        str(p.relative_to(ROOT))
        for p in SOURCES
        if any(n.name == "clip_weights_" for n in _definitions(ast.parse(p.read_text())))
    ]
    assert defining == ["shared/src/bnn_shared/layers.py"]


def test_the_check_finds_a_copy(tmp_path):
    """The patterns catch the shapes the packages' copies had."""
    copy = (
        "def hard_sign(x):\n    return torch.sign(x).sub_(0.5).sign_()\n"
        "class STEFunction(torch.autograd.Function): pass\n"
        "def register(x): pass\ndef step(x): pass\n"
    )
    names = [n.name for n in _definitions(ast.parse(copy)) if NAME.search(n.name)]
    assert names == ["hard_sign", "STEFunction"]
    assert len(PRIMITIVES.findall(copy)) == 2
