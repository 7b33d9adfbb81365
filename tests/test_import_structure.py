"""The package's imports only go down: no cycle, no import inside a function.

Read from the source with `ast`, so nothing is imported and a cycle that
Python would resolve at run time (by the order of imports) still fails here.
"""

import ast
import pathlib

import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent / "vae_jax"


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = path.relative_to(root.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(
  node: ast.AST, modules: set[str], *, with_parents: bool = True
) -> list[str]:
  """The package modules an import statement names, and the parent packages
  it runs too."""
  if isinstance(node, ast.Import):
    names = [alias.name for alias in node.names]
  elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
    # `from a import b` runs a.b when b is a module, and a either way.
    names = [node.module] + [
      f"{node.module}.{alias.name}" for alias in node.names
    ]
  else:
    return []
  targets = set()
  for name in names:
    parts = name.split(".")
    targets.update(
      ".".join(parts[:i])
      for i in range(1 if with_parents else len(parts), len(parts) + 1)
    )
  named = targets & modules
  if not with_parents:  # `from a import b`, b a module: only a.b.
    named -= {other.rpartition(".")[0] for other in named}
  return sorted(named)


def read_imports(root: pathlib.Path):
  """{module: the package modules it imports} and [(module, line, target)]
  of the imports inside functions, for every module of the package at
  `root`."""
  paths = sorted(root.rglob("*.py"))
  modules = {_module_name(path, root) for path in paths}
  graph, nested = {}, []
  for path in paths:
    name = _module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    graph[name] = set()
    functions = [
      node
      for node in ast.walk(tree)
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    inside = {
      id(inner) for function in functions for inner in ast.walk(function)
    }
    for node in ast.walk(tree):
      if id(node) in inside:
        nested.extend(
          (name, node.lineno, target)
          for target in _targets(node, modules, with_parents=False)
        )
      # A cycle closed by an import inside a function is a cycle still.
      graph[name].update(set(_targets(node, modules)) - {name})
  return graph, nested


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  index, low, on_stack, stack, found = {}, {}, set(), [], []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in sorted(graph.get(node, ())):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_no_import_cycle():
  graph, _ = read_imports(PACKAGE_ROOT)
  found = cycles(graph)
  assert not found, "import cycles: " + "; ".join(
    f"{len(c)} modules: {', '.join(c)}" for c in found
  )


# The layers of the README's code map, lowest first: a module imports from
# its own layer and the ones before it, never from a later one.
LAYERS = (
  "vae_jax.errors",
  "vae_jax.core",
  "vae_jax.data",
  "vae_jax.models",
  "vae_jax.objectives",
  "vae_jax.trainers",
  "vae_jax.analysis",
  "vae_jax.sweeps",
)


def layer(module: str) -> int:
  """The index of `module`'s layer; the commands and the package's
  `__init__` come after every layer."""
  for index, prefix in enumerate(LAYERS):
    if module == prefix or module.startswith(prefix + "."):
      return index
  return len(LAYERS)


def test_imports_only_go_down_the_layers():
  graph, _ = read_imports(PACKAGE_ROOT)
  upward = [
    f"{module} imports {target}"
    for module, targets in sorted(graph.items())
    for target in sorted(targets)
    if target != "vae_jax" and layer(target) > layer(module)
  ]
  assert not upward, "imports up the layers: " + "; ".join(upward)


def test_no_import_of_the_package_inside_a_function():
  _, nested = read_imports(PACKAGE_ROOT)
  assert not nested, "imports inside functions: " + ", ".join(
    f"{module}:{line} imports {target}" for module, line, target in nested
  )


def _write_package(root: pathlib.Path, sources: dict[str, str]) -> pathlib.Path:
  for name, source in sources.items():
    path = root / "vae_jax" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
  return root / "vae_jax"


@pytest.mark.parametrize(
  "sources,expected",
  [
    # Through a package's __init__ and a from-import of a module.
    (
      {
        "__init__.py": "",
        "a.py": "from vae_jax.sub import b\n",
        "sub/__init__.py": "from vae_jax import c\n",
        "sub/b.py": "",
        "c.py": "import vae_jax.a\n",
      },
      [["vae_jax.a", "vae_jax.c", "vae_jax.sub"]],
    ),
    (
      {
        "__init__.py": "",
        "a.py": "from vae_jax import b\n",
        "b.py": "import os\n",
      },
      [],
    ),
  ],
)
def test_cycles_are_found(tmp_path, sources, expected):
  graph, _ = read_imports(_write_package(tmp_path, sources))
  assert cycles(graph) == expected


def test_imports_inside_functions_are_found(tmp_path):
  root = _write_package(
    tmp_path,
    {
      "__init__.py": "",
      "b.py": "",
      "a.py": "import os\n\ndef f():\n  from vae_jax import b\n  import os\n",
    },
  )
  assert read_imports(root)[1] == [("vae_jax.a", 4, "vae_jax.b")]
