"""The import graph of kd_keras, read statically (ast, nothing imported).

Two rules, checked per area (`kd_keras.<name>`, the top-level package or
module a file belongs to):

- no import cycle: no module reaches itself through its imports, counting
  imports inside functions too (a lazy import hides a cycle, it does not
  remove it);
- no module imports another module's private (`_name`) name, by
  `from m import _name` or by `m._name` on an imported module.

An import `from a.b import c` is an edge to the module `a.b.c` when that is a
module, else to `a.b`; the parent packages Python runs on the way are not
counted (a package's `__init__` is an edge only when it is named).
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kd_keras")


def _modules():
    """Module name -> (file, is_package) for every kd_keras/**/*.py."""
    modules = {}
    base = os.path.dirname(ROOT)
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, base)[:-3].split(os.sep)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            modules[".".join(parts)] = (path, is_package)
    return modules


MODULES = _modules()


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(module, is_package, node):
    """The absolute module an `ImportFrom` node names."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _scan(module):
    """Returns `(edges, private)`: the kd_keras modules `module` imports and
    its uses of other modules' private names (`"where: what"` strings)."""
    path, is_package = MODULES[module]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    edges, private, aliases = set(), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    edges.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            if not base.startswith("kd_keras"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    edges.add(full)
                    aliases[alias.asname or alias.name] = full
                elif base in MODULES:
                    edges.add(base)
                    if _is_private(alias.name) and base != module:
                        private.append(f"{module}:{node.lineno}: {base}.{alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _is_private(node.attr)
                and aliases[node.value.id] != module):
            private.append(f"{module}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    edges.discard(module)
    return edges, private


SCANS = {module: _scan(module) for module in MODULES}


def _cycles():
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(SCANS[v][0]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    return found


CYCLES = _cycles()


def _area(module):
    return ".".join(module.split(".")[:2])


AREAS = sorted({_area(m) for m in MODULES})


def test_the_scanner_sees_the_package():
    assert "kd_keras.teachers.adaptation" in MODULES
    edges, _ = SCANS["kd_keras.teachers.adaptation"]
    assert "kd_keras.teachers.top_layers" in edges and "kd_keras.errors" in edges


@pytest.mark.parametrize("area", AREAS)
def test_no_import_cycle(area):
    involved = [c for c in CYCLES if any(_area(m) == area for m in c)]
    assert not involved, f"{area}: import cycles: {involved}"


@pytest.mark.parametrize("area", AREAS)
def test_no_private_name_of_another_module(area):
    found = [p for m in MODULES if _area(m) == area for p in SCANS[m][1]]
    assert not found, f"{area}: imports private names: {found}"


CORE_CHECK = """
import sys
import kd_keras
from kd_keras import Distiller, FeatureDistillation
loaded = sorted(sys.modules)
core = ("kd_keras.distillation", "kd_keras._keras_compat", "kd_keras._lazy", "kd_keras.errors",
        "kd_keras.class_ids", "kd_keras.number_checks")
heavy = ("ray", "tf2onnx", "onnxruntime", "ai_edge_litert", "torch", "transformers")
print([m for m in loaded if m.startswith("kd_keras.") and not m.startswith(core)
       or m.split(".")[0] in heavy])
print("kd_keras.distillation.distiller" in loaded)
"""


def test_the_core_loads_nothing_heavy_in_a_fresh_process():
    """`import kd_keras` and its Distiller load the core package
    (`kd_keras.distillation`), its four helpers and the lazy-exports helper
    only: no cache, teacher,
    export, pipeline or distribute module of kd_keras, and none of the heavy
    optional libraries; measured in a fresh interpreter, where nothing was
    imported before."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", CORE_CHECK], capture_output=True,
                            text=True, timeout=300, check=True)
    assert result.stdout.strip().splitlines()[-2:] == ["[]", "True"], result.stdout


def _reachable(start):
    """Every kd_keras module `start` imports, directly or not (imports inside
    functions count)."""
    seen, todo = set(), [start]
    while todo:
        for module in SCANS[todo.pop()][0] - seen:
            seen.add(module)
            todo.append(module)
    return seen


# What the core and the public callbacks may import: themselves, the file
# helpers (not `files.models`, which registers the teachers' classes), the
# errors, the class-id and number checks and the Keras internals module. One exception, imported inside
# `Distiller.__init__` only: given a `kd_keras.teachers.Teacher` rather than
# a Keras model, the Distiller wraps it with `kd_keras.teachers.graph`
# (which reads the `Teacher` base class).
CORE_AREAS = ("kd_keras.distillation", "kd_keras.callbacks", "kd_keras.files.atomic",
              "kd_keras.files.json_files", "kd_keras.files.resume", "kd_keras.errors",
              "kd_keras.class_ids", "kd_keras.number_checks",
              "kd_keras._keras_compat", "kd_keras.teachers.graph", "kd_keras.teachers.base")


@pytest.mark.parametrize("start", ["kd_keras.distillation", "kd_keras.callbacks"])
def test_the_core_and_the_callbacks_import_only_the_core(start):
    outside = sorted(m for m in _reachable(start) if not m.startswith(CORE_AREAS))
    assert not outside, f"{start} reaches {outside}"


def test_public_paths_name_the_core_modules():
    """`kd_keras.losses` is a public module over the core's; the other
    top-level names are the core's modules themselves."""
    import kd_keras
    from kd_keras.distillation import feature_losses
    from kd_keras.distillation import features
    from kd_keras.distillation import losses
    from kd_keras.distillation import schedules
    from kd_keras.distillation import transformer_terms
    from kd_keras.losses import soft_target_kl

    assert soft_target_kl is losses.soft_target_kl is kd_keras.losses.soft_target_kl
    assert sorted(kd_keras.losses.__all__) == sorted(losses.__all__)
    assert all(getattr(kd_keras.losses, n) is getattr(losses, n) for n in losses.__all__)
    assert kd_keras.features is features and kd_keras.schedules is schedules
    assert kd_keras.feature_losses is feature_losses
    assert kd_keras.transformer_terms is transformer_terms
    assert kd_keras.Distiller is kd_keras.distillation.Distiller
    assert kd_keras.FeatureDistillation is features.FeatureDistillation


def _declared(module):
    """(`__all__` names or None, names the package binds, lazy table keys)."""
    tree = ast.parse(open(MODULES[module][0]).read())
    bound, tables, listed = set(), {}, None
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Tuple):  # __getattr__, __dir__ = lazy_exports(...)
                    bound.update(e.id for e in target.elts if isinstance(e, ast.Name))
                if isinstance(target, ast.Name):
                    bound.add(target.id)
                    if isinstance(node.value, (ast.Dict, ast.Tuple)):
                        items = node.value.keys if isinstance(node.value, ast.Dict) else node.value.elts
                        tables[target.id] = [k.value for k in items if isinstance(k, ast.Constant)]
                    if target.id == "__all__":
                        listed = []
                        value = node.value
                        if isinstance(value, ast.Call):  # __all__ = sorted(_TABLE)
                            value = ast.List([ast.Starred(value.args[0])])
                        for elt in value.elts:
                            if isinstance(elt, ast.Starred):
                                listed += tables[elt.value.id]
                            else:
                                listed.append(elt.value)
    lazy = {name for names in tables.values() for name in names} \
        if "__getattr__" in bound else set()
    return listed, bound, lazy


PACKAGES = sorted(m for m, (_, is_package) in MODULES.items() if is_package)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_declares_all_and_binds_each_name(package):
    listed, bound, lazy = _declared(package)
    assert listed is not None, f"{package} has no __all__"
    assert len(listed) == len(set(listed)), f"{package}.__all__ repeats a name"
    missing = sorted(set(listed) - bound - lazy)
    assert not missing, f"{package}.__all__ names what it neither imports nor defines: {missing}"
