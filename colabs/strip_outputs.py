r"""Strips what running a notebook adds to it, before it is committed.

    python colabs/strip_outputs.py colabs/*.ipynb

Removes outputs, execution counts, saved widget state (with the PNGs the
sliders showed), papermill's metadata and its injected-parameters cell.
tests/test_colabs.py fails when a committed notebook has outputs, execution
counts or widget state. `jupyter nbconvert --clear-output` keeps the widget
state, so it is not enough.
"""

import sys

import nbformat

_RUN_METADATA = ("execution", "papermill", "collapsed", "scrolled")


def strip(path: str) -> None:
  notebook = nbformat.read(path, as_version=4)
  for key in ("widgets", "papermill"):
    notebook.metadata.pop(key, None)
  notebook.cells = [
    cell
    for cell in notebook.cells
    if "injected-parameters" not in cell.metadata.get("tags", [])
  ]
  for cell in notebook.cells:
    for key in _RUN_METADATA:
      cell.metadata.pop(key, None)
    if cell.metadata.get("tags") == []:  # Papermill adds empty ones.
      del cell.metadata["tags"]
    if cell.cell_type == "code":
      cell.outputs = []
      cell.execution_count = None
  nbformat.write(notebook, path)


if __name__ == "__main__":
  for notebook_path in sys.argv[1:]:
    strip(notebook_path)
