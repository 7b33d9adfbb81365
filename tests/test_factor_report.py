"""Disentanglement in `analyze` for a dataset with known factors (dSprites)."""

import json

import numpy as np
import pytest

from testbed import make_tiny_config
from vae_jax.analysis import disentanglement
from vae_jax.analysis import factor_report
from vae_jax.analysis import latent_metrics
from vae_jax.analysis import report as report_lib
from vae_jax.analysis import runs as runs_lib
from vae_jax.data import batching
from vae_jax.data import dsprites
from vae_jax.data import pipeline
from vae_jax.data import sources
from vae_jax.trainers import loop

NUM_IMAGES = 48  # Generated, evenly spaced over the grid, and trained on.
NUM_TEST = 16
# Resized, so the grid's images must be resized as the pipeline's are.
IMAGE_SIZE = 32
# Far below the protocol's, for seconds. DCI's boosted trees cost 100 per
# class seen, whatever the count: on 20 points, about 65 classes, 3 s.
SMALL_COUNTS = {
  "mig": {"num_points": 500},
  "factor_vae_score": {
    "num_variance_points": 500,
    "num_train_votes": 40,
    "num_eval_votes": 40,
  },
  "dci": {"num_train": 20, "num_test": 20},
}


@pytest.fixture(scope="module")
def dsprites_run(tmp_path_factory):
  """The workdir of a tiny VAE trained on 48 dSprites images, at 32x32."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  indices = np.arange(0, dsprites.NUM_IMAGES, dsprites.NUM_IMAGES // NUM_IMAGES)
  dsprites.generate(data_dir, indices=indices)
  config = make_tiny_config()
  config.num_epochs = 1
  config.input.update(
    dataset=dsprites.NAME,
    data_dir=data_dir,
    test_split=f"train[:{NUM_TEST}]",
    image_size=IMAGE_SIZE,
  )
  workdir = tmp_path_factory.mktemp("run")
  loop.train_and_evaluate(config, str(workdir))
  return workdir


def test_dsprites_declares_its_factors_and_mnist_none():
  config = make_tiny_config()
  assert config.input.dataset == "mnist"
  assert sources.factor_grid(config.input) is None
  config.input.dataset = dsprites.NAME
  grid = sources.factor_grid(config.input)
  assert grid.names == (
    "color",
    "shape",
    "scale",
    "orientation",
    "x_position",
    "y_position",
  )
  assert grid.sizes == (1, 3, 6, 40, 32, 32)
  classes = dsprites.classes_of(np.arange(0, dsprites.NUM_IMAGES, 7919))
  images = grid.images(classes)
  assert images.dtype == np.uint8
  np.testing.assert_array_equal(images, dsprites.images(classes))


def test_the_grids_images_are_the_pipelines(dsprites_run):
  config = runs_lib.load_config(str(dsprites_run))
  first = pipeline.prepare(config.input).first_test_batch(NUM_TEST)
  images = sources.factor_grid(config.input).images(first["factors"])
  assert images.shape == (NUM_TEST, IMAGE_SIZE, IMAGE_SIZE, 1)
  assert len(np.unique(images)) > 2  # Resized: grey edges.
  np.testing.assert_array_equal(
    batching.to_model_pixels(images, config.input), first["image"]
  )


def test_codes_of_are_the_posterior_means_of_the_images(dsprites_run):
  run = runs_lib.load(str(dsprites_run))
  codes_of = factor_report.codes_of(run, sources.factor_grid(run.config.input))
  first = run.data.first_test_batch(NUM_TEST)
  mu, _ = runs_lib.encode(run, first["image"], np.zeros(NUM_TEST, np.int32))
  # Another batch shape: float32 rounding apart.
  np.testing.assert_allclose(
    codes_of(first["factors"]), mu, rtol=1e-5, atol=1e-6
  )
  # Past one encoder batch, the rows are encoded alike.
  classes = dsprites.classes_of(np.arange(factor_report.ENCODE_BATCH + 40))
  np.testing.assert_array_equal(
    codes_of(classes)[-40:], codes_of(classes[-40:])
  )


# 20 points of up to 40 classes: sklearn asks whether it is regression.
@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_analysis_writes_the_metrics_of_the_grids_codes(
  dsprites_run, monkeypatch
):
  monkeypatch.setattr(factor_report, "SAMPLE_COUNTS", SMALL_COUNTS)
  figures = {}
  image_rows = factor_report.plots.image_rows

  def kept_image_rows(rows, row_labels, title, **kwargs):
    figures["traversal_per_unit"] = (rows, row_labels)
    return image_rows(rows, row_labels, title, **kwargs)

  monkeypatch.setattr(factor_report.plots, "image_rows", kept_image_rows)
  report = report_lib.analyze(str(dsprites_run), num=4, num_points=NUM_TEST)
  out_dir = dsprites_run / "analysis"
  assert (out_dir / "traversal_per_unit.png").stat().st_size > 0
  written = json.loads((out_dir / "analysis.json").read_text())
  scores = report["disentanglement"]
  assert written["disentanglement"] == scores
  assert report["seconds"]["disentanglement"] > 0

  # The same metrics, called directly on the same codes.
  run = runs_lib.load(str(dsprites_run))
  grid = sources.factor_grid(run.config.input)
  codes_of = factor_report.codes_of(run, grid)
  mig = disentanglement.mig(codes_of, grid.sizes, **SMALL_COUNTS["mig"])
  factor_vae = disentanglement.factor_vae_score(
    codes_of, grid.sizes, **SMALL_COUNTS["factor_vae_score"]
  )
  dci = disentanglement.dci(codes_of, grid.sizes, **SMALL_COUNTS["dci"])
  informative = grid.names[1:]  # All but color, of one value.
  assert scores["factors"] == list(informative)
  assert scores["mig"] == mig["mig"]
  assert scores["mig_per_factor"] == {
    name: mig[f"mig_factor_{index}"]
    for index, name in enumerate(informative, start=1)
  }
  assert scores["factor_vae_score"] == factor_vae["eval_accuracy"]
  assert scores["factor_vae_train_accuracy"] == factor_vae["train_accuracy"]
  assert scores["factor_vae_active_dims"] == factor_vae["num_active_dims"]
  for key, value in dci.items():
    assert scores[f"dci_{key}"] == value, key
  assert scores["sample_counts"] == SMALL_COUNTS

  # Each unit follows the factor of its largest share of MIG's information.
  information, entropy = disentanglement.mutual_information(
    codes_of, grid.sizes, **SMALL_COUNTS["mig"]
  )
  share = information[:, 1:] / entropy[1:]
  np.testing.assert_array_equal(scores["unit_information"], share)
  for index, name in enumerate(informative):
    ranked = np.sort(share[:, index])
    assert scores["mig_per_factor"][name] == pytest.approx(
      ranked[-1] - ranked[-2], abs=1e-12
    )
  kl = np.asarray(report["kl_per_dim"])
  assert scores["unit_factor"] == [
    informative[np.argmax(row)]
    if unit_kl > latent_metrics.ACTIVE_UNIT_NATS
    else None
    for row, unit_kl in zip(share, kl)
  ]

  # One row per unit, most KL first, each that unit swept around z = 0.
  rows, row_labels = figures["traversal_per_unit"]
  order = np.argsort(-kl)
  assert row_labels == [
    factor_report.unit_label(unit, scores, kl[unit]) for unit in order
  ]
  codes = np.zeros((len(report_lib.TRAVERSAL_VALUES), len(kl)), np.float32)
  codes[:, order[0]] = report_lib.TRAVERSAL_VALUES
  np.testing.assert_array_equal(rows[0], runs_lib.decode(run, codes))
  assert len(rows) == len(kl) == 4


def test_units_are_labelled_by_their_factor_or_as_collapsed():
  scores = {
    "unit_factor": [None, "scale"],
    "unit_information": [[0.01, 0.0], [0.1, 0.62]],
  }
  assert factor_report.unit_label(0, scores, 0.004) == (
    "z[0]: collapsed (KL 0.004)"
  )
  assert factor_report.unit_label(1, scores, 3.0) == "z[1]: scale (MI/H 0.62)"
