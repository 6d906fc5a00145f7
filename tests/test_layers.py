"""The layers run one way (DESIGN.md, "A layout to grow into"): the library never imports the
command line, imports form no circle, the runtime sits at the bottom, and every recipe and
loader is a library function (the CLI only parses, calls and prints).

The import graph is read from the source (``ast``), function-level imports included: a lazy
import inside a function is still a dependency, and a circle through one is still a circle.
``if TYPE_CHECKING:`` blocks are left out (annotations only, never executed).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "pixseq"

#: The bottom layer: it may import only itself.
RUNTIME = {"pixseq.errors", "pixseq.io", "pixseq.config", "pixseq.runtime", "pixseq.device", "pixseq.version",
           "pixseq.plugins"}
#: Top layers: nothing below them imports these.
TOP = ("pixseq.cli", "pixseq.app", "pixseq.__main__")
#: What the one Trainer must not know about: the model families and everything above them.
ABOVE_TRAIN = ("pixseq.models", "pixseq.tokenizers", "pixseq.priors", "pixseq.codec", "pixseq.metrics",
               "pixseq.gans", "pixseq.classifiers", "pixseq.guidance", "pixseq.upscale", "pixseq.zoo",
               "pixseq.demo", "pixseq.assess", "pixseq.probe") + TOP


def _module_names() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _module_names()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(name: str, path: Path) -> set[str]:
    """The pixseq modules ``name`` imports anywhere in its file (a ``from pkg import sub``
    of a sub-module counts as that sub-module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    module = ".".join(base[:len(base) - child.level + 1] + ([module] if module else []))
                for alias in child.names:
                    sub = f"{module}.{alias.name}"
                    found.add(sub if sub in MODULES else module)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(module: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_library_never_imports_the_command_line_or_the_ui():
    offenders = sorted((m, d) for m, deps in GRAPH.items() if not _within(m, TOP)
                       for d in deps if _within(d, TOP))
    assert offenders == [], offenders


def test_no_import_circles():
    # Tarjan's strongly connected components: any component of more than one module is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            strong(v)
    assert circles == [], circles


def test_the_runtime_layer_imports_only_itself():
    offenders = sorted((m, d) for m in RUNTIME for d in GRAPH.get(m, ()) if d not in RUNTIME and d != "pixseq")
    assert offenders == [], offenders


def test_the_trainer_knows_no_model_family():
    offenders = sorted((m, d) for m, deps in GRAPH.items() if _within(m, ("pixseq.train",))
                       for d in deps if _within(d, ABOVE_TRAIN))
    assert offenders == [], offenders


RECIPE_PREFIXES = ("fit_", "build_", "train_", "load_")


@pytest.mark.parametrize("path", sorted((PKG / "cli").glob("*.py")), ids=lambda p: p.name)
def test_the_cli_defines_no_recipe_or_loader(path):
    """Recipes and model loaders are library functions, so the UI, the demo and Python users
    call the same code as the CLI (``add_train_arguments`` and friends parse options)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    parsing = {"train_options", "build_parser"}  # argparse: the parser, the options of a training run
    assert [n for n in names if n.startswith(RECIPE_PREFIXES) and n not in parsing] == []


def _public_recipes() -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for name, path in MODULES.items():
        if _within(name, TOP):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith(("fit_", "build_", "train_")):
                out.append((f"{name}.{node.name}", node))
    return out


def test_every_recipe_is_documented_and_typed():
    recipes = _public_recipes()
    assert {"pixseq.models.igpt_train.fit_igpt", "pixseq.models.igpt_train.train_igpt",
            "pixseq.models.taming_train.fit_vqgan", "pixseq.models.taming_train.train_prior"} <= {n for n, _ in recipes}
    undocumented = [n for n, f in recipes if not ast.get_docstring(f)]
    untyped = [n for n, f in recipes if f.returns is None]
    assert undocumented == [] and untyped == [], (undocumented, untyped)


def test_one_loader_for_every_kind(tmp_path):
    """``pixseq.load_model`` loads any kind, names the kind it found when another was asked
    for, and is what the verbs use (no verb has a loader of its own: see above)."""
    import pixseq
    from pixseq.checkpoint import save_pretrained
    from pixseq.errors import PixseqError
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config

    save_pretrained(VQGAN(vqgan_config(4, 8, 4, 8)), tmp_path / "vq")
    model = pixseq.load_model(tmp_path / "vq")
    assert model.kind == "vqgan" and not model.training
    with pytest.raises(PixseqError, match="kind 'vqgan', expected igpt or taming"):
        pixseq.load_model(tmp_path / "vq", ("igpt", "taming"))
    for verb in ("sample", "complete", "probe", "compress", "evaluate", "reconstruct"):
        text = (PKG / "cli" / f"{verb}.py").read_text()
        assert "load_model(" in text and "from_pretrained" not in text, verb
