"""Declarations found by looking, so that adding one is adding a module.

Model families (`models.family.Family`), objectives
(`objectives.objective.Objective`) and trainers (`trainers.trainer.Trainer`)
are each declared in a module of their own package, in a module-level tuple.
`collect` imports every module of the package once, when its registry is
first imported, and indexes what they declare by name: no list to keep in
step with the files.
"""

import importlib
import os
import pkgutil
from typing import Any


def collect(
  registry_name: str, registry_file: str, attribute: str
) -> dict[str, Any]:
  """{name: declaration} of every `attribute` tuple in the package of the
  registry module `registry_name` (its `__name__`, and `__file__`)."""
  package = registry_name.rpartition(".")[0]
  found = {}
  for module_info in pkgutil.iter_modules([os.path.dirname(registry_file)]):
    module_name = f"{package}.{module_info.name}"
    if module_name == registry_name:
      continue
    module = importlib.import_module(module_name)
    for declaration in getattr(module, attribute, ()):
      if declaration.name in found:
        raise ValueError(
          f"{declaration.name!r} is declared twice, the "
          f"second time in {module_name}."
        )
      found[declaration.name] = declaration
  return dict(sorted(found.items()))
