"""The package's import structure (ARCHITECTURE.md): no import cycle, counting imports inside
functions; config/ imports nothing else from cakes_video; nothing outside benchmarks/ imports
it; no function-local import of a project module except the listed lazy ones."""
import ast
import os
import subprocess
import sys
from collections import defaultdict

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cakes_video")
# (module, imported module): project imports kept inside a function on purpose, and why.
LAZY_PROJECT_IMPORTS = {
    ("cakes_video.datasets.decoding", "cakes_video.datasets.decoding_decord"):
        "decord is imported on first use: it has no wheels on some platforms",
}


# Edges are the import statements themselves. The implicit "a package's __init__ runs before
# its modules" is left out: an __init__ that imports its own modules is not a cycle.


def _modules():
    """{module name: (path, is package)} of every .py file under cakes_video/."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                is_package = parts[-1] == "__init__"
                found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _targets(module, is_package, node, modules):
    """Project modules an Import / ImportFrom node loads (``from pkg import sub`` loads pkg.sub)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level:
            base = base[:len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
    out = set()
    for name in names:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in modules and name.startswith("cakes_video"):
            out.add(name)
    return out


def _import_graph():
    """(edges {module: set of modules it imports}, function-local edges [(module, target)])."""
    modules = _modules()
    edges, local = defaultdict(set), []
    for module, (path, is_package) in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        in_function = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, is_package, node, modules) - {module}:
                    edges[module].add(target)
                    if id(node) in in_function:
                        local.append((module, target))
    return edges, local


def _cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def _package_of(module):
    """``cakes_video.models.cakes`` -> ``cakes_video.models``; top-level modules stay themselves."""
    parts = module.split(".")
    return ".".join(parts[:2])


# ARCHITECTURE.md's layers, bottom (0) to top: an import goes to the same layer or a lower one.
LAYERS = {
    "cakes_video.config": 0,
    "cakes_video.utils": 1,
    "cakes_video.models": 2, "cakes_video.datasets": 2, "cakes_video.solver": 2,
    "cakes_video.config_loader": 3,
    "cakes_video.checkpoint": 4,
    "cakes_video.zoo": 5,
    "cakes_video.search": 6,
    "cakes_video.engine": 7,
    "cakes_video.benchmarks": 8,
}
EDGES, LOCAL = _import_graph()


def test_the_walker_sees_imports_inside_functions():
    graph, local = _import_graph()
    assert ("cakes_video.datasets.decoding", "cakes_video.datasets.decoding_decord") in local
    assert "cakes_video.models.resnet3d" in graph["cakes_video.models.config_checks"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    assert _cycles(EDGES) == []


def test_no_import_cycle_between_packages():
    packages = defaultdict(set)
    for module, targets in EDGES.items():
        for target in targets:
            if _package_of(target) != _package_of(module) and _package_of(target) != "cakes_video":
                packages[_package_of(module)].add(_package_of(target))
    assert _cycles(packages) == []


def test_every_module_has_a_layer():
    assert sorted({_package_of(m) for m in EDGES} - set(LAYERS) - {"cakes_video"}) == []


def test_imports_run_down_the_layers():
    upward = [(m, t) for m, targets in EDGES.items() for t in targets
              if m != "cakes_video" and LAYERS[_package_of(t)] > LAYERS[_package_of(m)]]
    assert upward == []


def test_models_and_datasets_do_not_import_each_other():
    across = [(m, t) for m, targets in EDGES.items() for t in targets
              if {_package_of(m), _package_of(t)} == {"cakes_video.models", "cakes_video.datasets"}]
    assert across == []


def test_reading_a_config_imports_no_torch_model_or_decoder():
    code = ("import sys; import cakes_video.config as c; c.merge_config('r3d_18'); "
            "print(sorted(m for m in ('torch', 'torchvision', 'tqdm', 'av', 'decord', 'cakes_video.models', "
            "'cakes_video.datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_public_facade_names_resolve():
    import cakes_video

    assert cakes_video.load_config("r3d_18").MODEL.DEPTH == 18 and callable(cakes_video.build_model)
    assert set(cakes_video.__all__) <= set(dir(cakes_video))
    with pytest.raises(AttributeError, match="no attribute 'train'"):
        cakes_video.train


def test_no_module_imports_the_public_facade():
    assert [m for m, targets in EDGES.items() if "cakes_video" in targets] == []


def test_config_imports_nothing_else_from_the_project():
    for module, targets in EDGES.items():
        if module.startswith("cakes_video.config.") or module == "cakes_video.config":
            assert all(t == "cakes_video.config" or t.startswith("cakes_video.config.") for t in targets), (
                module, targets)


def test_only_benchmarks_import_benchmarks():
    for module, targets in EDGES.items():
        if not module.startswith("cakes_video.benchmarks"):
            assert not any(t.startswith("cakes_video.benchmarks") for t in targets), module


@pytest.mark.parametrize("module, target", LOCAL)
def test_function_local_project_imports_are_only_the_listed_lazy_ones(module, target):
    assert (module, target) in LAZY_PROJECT_IMPORTS, f"{module} imports {target} inside a function"
