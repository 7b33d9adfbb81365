"""The pretrained models in pretrained/: they load, and their weights give
their cards' check figures again; and the provenance their cards quote.

A folder needs its dataset only for the image shape, so a tiny random-pixel
MNIST stands in for it (in a data dir of its own: a folder's config reads
MNIST from wherever it finds it, `tiny_mnist`); the check figures are
computed on the real test images each folder holds (check_examples.npz).
"""

import glob
import os
import subprocess

import pytest

from conftest import REPO_ROOT
import tiny_mnist
from vae_jax.analysis import pretrained
from vae_jax.analysis import runs
from vae_jax.core import provenance
from vae_jax.core import weights_file

FOLDERS = sorted(
  os.path.dirname(path)
  for path in glob.glob(os.path.join(REPO_ROOT, "pretrained", "*", "card.json"))
)
MAX_WEIGHTS_BYTES = 4 * 2**20  # The limits: 4 MB each,
MAX_TOTAL_BYTES = 20 * 2**20  # 20 MB for all the folders.


def test_pretrained_models_exist_within_their_size_limits():
  assert FOLDERS
  total = 0
  for folder in FOLDERS:
    size = os.path.getsize(weights_file.path_in(folder))
    assert size <= MAX_WEIGHTS_BYTES, folder
    total += sum(
      os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)
    )
  assert total <= MAX_TOTAL_BYTES


@pytest.mark.parametrize("folder", FOLDERS, ids=os.path.basename)
def test_pretrained_model_gives_its_cards_check_figures(folder, tmp_path):
  card = pretrained.read_card(folder)
  run = runs.load(folder, data_dir=tiny_mnist.write(str(tmp_path)))
  assert run.step == card["steps"]
  figures = pretrained.check_figures(
    run, pretrained.read_check_examples(folder)
  )
  assert {name: pretrained.printed(v) for name, v in figures.items()} == {
    name: card["check"][name] for name in figures
  }
  # The card a reader sees is card.json's, printed.
  with open(os.path.join(folder, "README.md")) as f:
    assert f.read() == pretrained.card_markdown(os.path.basename(folder), card)


def git(directory, *args):
  return subprocess.run(
    ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t"]
    + list(args),
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()


def test_source_commit_names_the_checkout_that_tracks_the_package(
  tmp_path, monkeypatch
):
  package = tmp_path / "checkout" / "vae_jax"
  package.mkdir(parents=True)
  (package / "__init__.py").write_text("")
  monkeypatch.setattr(provenance, "_PACKAGE_DIR", str(package))
  assert provenance.source_commit() is None  # Not in a checkout.
  git(tmp_path / "checkout", "init", "-q")
  assert provenance.source_commit() is None  # In one, but not tracked.
  git(package, "add", "__init__.py")
  git(package, "commit", "-q", "-m", "first")
  head = git(package, "rev-parse", "HEAD")
  assert provenance.source_commit() == head
  (package / "__init__.py").write_text("x = 1\n")
  assert provenance.source_commit() == f"{head}+modified"
