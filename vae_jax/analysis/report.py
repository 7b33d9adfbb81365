r"""Figures and numbers that describe one trained run, in WORKDIR/analysis/.

The library of the command

    python -m vae_jax.analyze --workdir=/tmp/vae_mnist --iwae_k=5000

`analyze` writes learning_curves.png, reconstructions.png, samples.png,
traversal.png, interpolation.png, latent_2d.png and analysis.json: test-set
metrics, per-dimension KL, active units, class separation of the codes, sample
diversity and an importance-weighted estimate of -log p(x): by default
for binarized runs at k = 5000 over the whole test split (the literature's
test NLL), as one compiled loop, and with --iwae_k for any VAE.
Plain autoencoders have no prior, nor VQ-VAEs yet, so the sampling-based
items are skipped, each with its reason under "skipped" in analysis.json; a
VQ-VAE's codes are its grids before quantization, flat, each interpolated
point quantized before it is decoded. On MNIST, the project's classifier
judges 10,000 samples (`classifier.sample_metrics`):
the Fréchet distance of its features to the test set's, precision and recall
in the same features and the samples' sharpness beside the test images'
(`sample_quality`), and frechet_over_training.png draws the distance at
every kept checkpoint (`frechet_curve`). GAN and ACGAN runs get their own
items from `gan_report.analyze`: samples.png, an ACGAN's pairs.png,
learning curves with the discriminator's accuracies and, on MNIST, the
same sample metrics, the curve, and how often the classifier recognizes
the conditioning digit, overall and per digit. A conditional VAE gets the
same: its samples drawn for every class in turn, the conditional accuracy,
pairs.png, and its k = 5000 estimate is the conditional -log p(x | y).
A VAE on a dataset with known factors (dSprites) gets MIG, the FactorVAE
score and DCI under "disentanglement", and traversal_per_unit.png, each
unit's traversal named by the factor it follows (`factor_report`).
"""

import functools
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from vae_jax import errors
from vae_jax.analysis import classifier
from vae_jax.analysis import code_prior_report
from vae_jax.analysis import event_logs
from vae_jax.analysis import factor_report
from vae_jax.analysis import frechet_curve
from vae_jax.analysis import gan_report
from vae_jax.analysis import latent_metrics
from vae_jax.analysis import plots
from vae_jax.analysis import runs
from vae_jax.core import outputs
from vae_jax.core import sharding
from vae_jax.data import pipeline
from vae_jax.data import sources
from vae_jax.models import family
from vae_jax.models import registry as models

NUM_SAMPLES = 32  # Images in samples.png and in the diversity measure.
# Samples the MNIST classifier judges (Fréchet distance, precision, recall).
NUM_METRIC_SAMPLES = gan_report.NUM_METRIC_SAMPLES
TRAVERSAL_VALUES = np.linspace(-3.0, 3.0, 9)
INTERPOLATION_STEPS = 10
# Why the items that sample a prior are skipped, for the kinds without one.
NO_PRIOR = {
  family.Kind.AUTOENCODER: "a plain autoencoder has no prior to sample from",
  family.Kind.VECTOR_QUANTIZED: (
    "a VQ-VAE alone has no prior over its codes to sample from"
  ),
}


def run_title(run: runs.TrainedRun, what: str) -> str:
  config, shape = run.config, "x".join(map(str, run.image_shape))
  if run.variational:
    model = f"latent {run.model.latent_size}, {config.loss.likelihood}, "
    model += (
      f"β={config.loss.kl_weight:g}"
      if "kl_weight" in config.loss
      else f"{config.loss.objective}, k={config.loss.num_samples}"
    )
  elif run.vector_quantized:
    height, width, dim = run.model.grid_shape
    model = (
      f"{height}x{width} codes of {run.model.codebook_size} entries "
      f"(D={dim}), {config.loss.likelihood}"
    )
  else:
    model = f"code {run.model.code_size}, MSE"
  name = os.path.basename(os.path.normpath(run.workdir))
  return (
    f"{what}\n{config.model.name} on {config.input.dataset} ({shape}), "
    f"{model}; run {name!r} at step {run.step}"
  )


def input_config_for(
  run: runs.TrainedRun, attribute: str | None
) -> tuple[ml_collections.ConfigDict, str]:
  """The run's input config, with `attribute` read too; the label's name."""
  config = run.config.input.copy_and_resolve_references()
  if attribute is None:
    names = {"mnist": "digit", "celeb_a": config.attributes[0]}
    return config, names.get(config.dataset, "label")
  if config.dataset != "celeb_a":
    raise errors.UserInputError(
      f"--attribute needs a celeb_a run; this run read {config.dataset}."
    )
  if attribute not in config.attributes:
    config.attributes = (*config.attributes, attribute)
  sources.check_config(config)  # Is it a CelebA attribute at all?
  return config, attribute


def _check_traversal_options(run: runs.TrainedRun, dims, center: str) -> None:
  """Fails before the slow parts on --dims or --traversal_center typos."""
  if not run.variational:
    return  # No traversal: the options are unused.
  latent_size = run.model.latent_size
  if dims is not None and (
    len(dims) != 2
    or dims[0] == dims[1]
    or not all(0 <= d < latent_size for d in dims)
  ):
    raise errors.UserInputError(
      f"--dims must be two different latent dims in [0, {latent_size}), "
      f"got {','.join(map(str, dims))}."
    )
  if center != "zero" and not center.isdigit():
    raise errors.UserInputError(
      f"--traversal_center must be 'zero' or a test image index, got "
      f"{center!r}."
    )


def _traversal_center(center: str, mu: np.ndarray) -> tuple[np.ndarray, str]:
  if center == "zero":
    return np.zeros(mu.shape[1], mu.dtype), "z = 0"
  if int(center) >= len(mu):
    raise errors.UserInputError(
      f"--traversal_center {center} is not below the {len(mu)} test images."
    )
  return mu[int(center)], f"the posterior mean of test image {center}"


def code_name(run: runs.TrainedRun) -> str:
  """What the run's codes (`runs.encode`'s) are, for titles."""
  if run.variational:
    return "posterior means"
  if run.vector_quantized:
    return "pre-quantization grids"
  return "codes"


def default_pairs(test_set: runs.EncodedSplit) -> list[tuple[int, int]]:
  """Pairs of kept test images to interpolate, mostly of different classes."""
  return latent_metrics.interpolation_pairs(
    test_set.labels[: len(test_set.images)]
  )


def interpolation_figure(
  run: runs.TrainedRun,
  test_set: runs.EncodedSplit,
  label_name: str,
  pairs: list[tuple[int, int]] | None = None,
):
  """Linear and spherical paths between the codes of each pair of kept test
  images (indices into `test_set.images`; `default_pairs` if None)."""
  t = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)
  rows, row_labels = [], []
  for a, b in default_pairs(test_set) if pairs is None else pairs:
    ends = test_set.images[[a, b]]
    for path_name, path in (
      ("linear", latent_metrics.lerp),
      ("slerp", latent_metrics.slerp),
    ):
      # A conditional model's path keeps the first image's class.
      path_images = runs.decode(
        run,
        path(test_set.codes[a], test_set.codes[b], t),
        np.full(len(t), test_set.model_labels[a], np.int32),
      )
      rows.append(np.concatenate([ends[:1], path_images, ends[1:]]))
      row_labels.append(
        f"{label_name} {test_set.labels[a]}→{test_set.labels[b]}, {path_name}"
      )
  quantized = ", each quantized" if run.vector_quantized else ""
  return plots.image_rows(
    rows,
    row_labels,
    run_title(
      run,
      f"Interpolation between the {code_name(run)} of two test images "
      f"(first and last column), decoded at {INTERPOLATION_STEPS} "
      f"points{quantized}",
    ),
  )


def reconstructions_figure(
  run: runs.TrainedRun, test_set: runs.EncodedSplit, num: int
):
  """The first `num` kept test images over their reconstructions."""
  originals = test_set.images[:num]
  recons = runs.reconstruct(
    run, test_set.model_images[:num], test_set.model_labels[:num]
  )
  rows, row_labels = [], []
  for start in range(0, len(originals), 16):
    rows += [originals[start : start + 16], recons[start : start + 16]]
    row_labels += ["test images", "reconstructions"]
  return plots.image_rows(rows, row_labels, run_title(run, "Reconstructions"))


def samples_figure(run: runs.TrainedRun, samples: np.ndarray):
  """Four rows of a VAE's uint8 `samples` (a multiple of 4 of them)."""
  return plots.image_rows(
    list(samples.reshape(4, -1, *samples.shape[1:])),
    None,
    run_title(run, f"{len(samples)} samples: decoded means of z ~ N(0, I)"),
  )


def traversal_figure(
  run: runs.TrainedRun,
  center: np.ndarray,
  center_name: str,
  dims: tuple[int, int],
):
  """Decodings of `center` [D] with z[dims] set over TRAVERSAL_VALUES."""
  n = len(TRAVERSAL_VALUES)
  codes = np.tile(center, (n, n, 1))
  codes[:, :, dims[0]] = TRAVERSAL_VALUES[:, None]
  codes[:, :, dims[1]] = TRAVERSAL_VALUES[None, :]
  # A conditional model's grid is all of one class: the first.
  grid = runs.decode(run, codes.reshape(n * n, -1), np.zeros(n * n, np.int32))
  return plots.traversal(
    grid.reshape(n, n, *grid.shape[1:]),
    TRAVERSAL_VALUES,
    dims,
    run_title(
      run,
      f"Traversal of z[{dims[0]}] and z[{dims[1]}] around "
      f"{center_name}; other dims fixed",
    ),
  )


def _variational_items(
  run,
  test_set,
  report: dict[str, Any],
  *,
  dims,
  traversal_center: str,
  rng: jax.Array,
):
  """Per-dimension KL, samples, their diversity and the traversal figure."""
  kl = latent_metrics.kl_per_dimension(test_set.codes, test_set.logvar)
  report["kl_per_dim"] = kl.tolist()
  report["active_units"] = int(np.sum(kl > latent_metrics.ACTIVE_UNIT_NATS))
  report["active_unit_threshold_nats"] = latent_metrics.ACTIVE_UNIT_NATS
  # Burda et al.'s count, comparable with their Table 2.
  report["active_units_by_variance"] = latent_metrics.active_units_by_variance(
    test_set.codes
  )
  report["active_unit_threshold_variance"] = latent_metrics.ACTIVE_UNIT_VARIANCE
  if dims is None:  # The two dims that carry the most information.
    dims = tuple(int(d) for d in np.argsort(-kl)[:2])
  center, center_name = _traversal_center(traversal_center, test_set.codes)
  samples = runs.decode(run, runs.prior_samples(run, rng, NUM_SAMPLES))
  report["sample_diversity"] = latent_metrics.mean_pairwise_distance(
    samples / 255
  )
  # The same measure on test images, so the number above has a scale.
  report["test_image_diversity"] = latent_metrics.mean_pairwise_distance(
    test_set.images[:NUM_SAMPLES] / 255
  )
  report["traversal"] = {"dims": list(dims), "center": center_name}
  return {
    "samples.png": samples_figure(run, samples),
    "traversal.png": traversal_figure(run, center, center_name, dims),
  }


def _factor_items(
  run,
  grid: sources.FactorGrid,
  test_set,
  report: dict[str, Any],
  traversal_center: str,
):
  """The disentanglement metrics and traversal_per_unit.png."""
  kl = np.asarray(report["kl_per_dim"])
  report["disentanglement"] = factor_report.scores(run, grid, kl)
  center, center_name = _traversal_center(traversal_center, test_set.codes)
  return {
    "traversal_per_unit.png": factor_report.traversal_per_unit_figure(
      run,
      report["disentanglement"],
      kl,
      center,
      TRAVERSAL_VALUES,
      run_title(
        run,
        f"Traversal of each latent unit around {center_name}, most KL "
        "first; each named by the factor it follows (MI / factor entropy)",
      ),
    )
  }


def latent_2d_figure(
  run: runs.TrainedRun,
  test_set: runs.EncodedSplit,
  label_name: str,
  num_points: int,
  seed: int,
):
  """The 2-D map of `num_points` random test codes; their class separation."""
  chosen = np.random.default_rng(seed).permutation(len(test_set.labels))[
    :num_points
  ]
  codes, labels = test_set.codes[chosen], test_set.labels[chosen]
  separation = {
    "label": label_name,
    "num_points": len(codes),
    **latent_metrics.class_separation(codes, labels, seed),
  }
  coords, method = latent_metrics.embed_2d(codes, seed)
  title = run_title(
    run, f"{method} of the {code_name(run)} of {len(codes)} test images"
  )
  return (
    plots.latent_scatter(coords, labels, label_name, title, method),
    separation,
  )


def learning_curves_figure(run: runs.TrainedRun):
  """The run's curves from its TensorBoard events; None if it logged none."""
  return plots.learning_curves(
    event_logs.read_scalars(run.workdir),
    run.variational,
    run_title(run, "Learning curves"),
    run.step,
  )


# The IWAE estimate binarized runs get unless --iwae_k says otherwise: the
# literature's test NLL (Burda et al., 2016), over the whole test split.
BINARIZED_IWAE_K = 5000


def likelihood_of(config: ml_collections.ConfigDict) -> str:
  """What the run's likelihood figures measure, in words for analysis.json."""
  if models.get(config.model.name).kind == family.Kind.VECTOR_QUANTIZED:
    return (
      "no likelihood: test_recon is -log p(x | z_q) at each image's own "
      "codes; a prior over the codes (input.codes_of) gives the pair's "
      "bound on -log p(x)"
    )
  if config.loss.get("likelihood") is None:  # An autoencoder's objective.
    return "no likelihood: the test loss is a reconstruction error"
  return runs.pixels_likelihood(config)


def _check_counts(**counts: int | None) -> None:
  for name, value in counts.items():
    # 0 skips the IWAE estimate, or the Fréchet curve.
    least = 0 if name in ("iwae_k", "curve_samples") else 1
    if value is not None and value < least:
      raise errors.UserInputError(f"--{name} must be >= {least}, got {value}.")


def analyze(
  workdir: str,
  *,
  step: int | None = None,
  num: int = 10,
  dims: tuple[int, int] | None = None,
  traversal_center: str = "zero",
  attribute: str | None = None,
  iwae_k: int | None = None,
  iwae_examples: int | None = None,
  num_points: int = 2000,
  seed: int = 0,
  curve_samples: int = frechet_curve.NUM_SAMPLES,
) -> dict[str, Any]:
  """Writes WORKDIR/analysis/ and returns the analysis.json payload.

  The arguments are the command's flags (`vae_jax/analyze.py`). `iwae_k`
  None is BINARIZED_IWAE_K for binarized runs and 0 (no estimate) for
  others; `iwae_examples` None is the whole test split.
  """
  start = time.perf_counter()
  _check_counts(
    num=num,
    num_points=num_points,
    iwae_k=iwae_k,
    iwae_examples=iwae_examples,
    curve_samples=curve_samples,
  )
  # Before the slow parts: a --workdir that holds no run, then one whose
  # analysis/ cannot be written (read-only, forbidden, a full disk).
  runs.load_config(workdir)
  out_dir = os.path.join(workdir, "analysis")
  outputs.check_writable(out_dir)
  run = runs.load(workdir, step)
  if run.adversarial:
    return gan_report.analyze(run, seed=seed, curve_samples=curve_samples)
  if run.code_prior:
    return code_prior_report.analyze(run, seed=seed)
  if iwae_k is None:
    iwae_k = 0 if run.config.input.binarize == "none" else BINARIZED_IWAE_K
  _check_traversal_options(run, dims, traversal_center)
  input_config, label_name = input_config_for(run, attribute)
  eval_rng, sample_rng, iwae_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
  report = {
    "workdir": os.path.abspath(workdir),
    "model": run.config.model.name,
    "dataset": run.config.input.dataset,
    "step": run.step,
    "variational": run.variational,
    "likelihood_of": likelihood_of(run.config),
    "skipped": {},
    "seconds": {},
  }

  clock = time.perf_counter()
  eval_ds = (
    runs.test_batches(run)
    if input_config == run.config.input
    else pipeline.prepare(input_config).eval_dataset(
      sharding.local_batch_size(run.config.batch_size)
    )
  )
  report.update(runs.evaluate(run, eval_ds, eval_rng))
  test_set = runs.encode_split(
    run,
    eval_ds,
    None if attribute is None else input_config.attributes.index(attribute),
    num_keep=max(num, NUM_SAMPLES, 200),
  )
  report["num_test_images"] = len(test_set.labels)
  report["seconds"]["evaluate"] = time.perf_counter() - clock
  figures = {
    "reconstructions.png": reconstructions_figure(run, test_set, num),
    "interpolation.png": interpolation_figure(run, test_set, label_name),
  }
  if run.variational:
    figures.update(
      _variational_items(
        run,
        test_set,
        report,
        dims=dims,
        traversal_center=traversal_center,
        rng=sample_rng,
      )
    )
    if run.parts.family.conditional:  # The same z under every class.
      figures["pairs.png"] = gan_report.pairs_figure(
        run, seed, generate=functools.partial(runs.decode, run)
      )
    grid = sources.factor_grid(run.config.input)
    if grid is not None:
      clock = time.perf_counter()
      figures.update(
        _factor_items(run, grid, test_set, report, traversal_center)
      )
      report["seconds"]["disentanglement"] = time.perf_counter() - clock
  else:
    for item in (
      "samples.png",
      "traversal.png",
      "sample_diversity",
      "kl_per_dim",
      "active_units",
      "iwae",
    ):
      report["skipped"][item] = NO_PRIOR[run.parts.family.kind]
  if run.variational and run.config.input.dataset == "mnist":
    clock = time.perf_counter()
    # A conditional model's samples: every class in turn, judged by the
    # classifier for the class asked for.
    classes = runs.sample_classes(run, NUM_METRIC_SAMPLES)
    samples = runs.decode(
      run,
      runs.prior_samples(
        run, jax.random.fold_in(sample_rng, 1), NUM_METRIC_SAMPLES
      ),
      classes,
    )
    report.update(
      classifier.sample_metrics(
        samples,
        classes if run.parts.family.conditional else None,
        data_dir=run.config.input.data_dir,
        mnist_source=run.config.input.mnist_source,
      )
    )
    report["seconds"]["mnist_metrics"] = time.perf_counter() - clock
    if curve_samples:
      clock = time.perf_counter()
      curve_rng = jax.random.fold_in(sample_rng, 2)
      (
        report["frechet_over_training"],
        figures["frechet_over_training.png"],
      ) = frechet_curve.analysis_items(
        run,
        # Each step's own prior (a VampPrior's moves), with the same noise.
        lambda at_step: runs.decode(
          at_step, runs.prior_samples(at_step, curve_rng, curve_samples)
        ),
        run_title(run, "Fréchet distance over training"),
      )
      report["seconds"]["frechet_over_training"] = time.perf_counter() - clock
  clock = time.perf_counter()
  figures["latent_2d.png"], report["class_separation"] = latent_2d_figure(
    run, test_set, label_name, num_points, seed
  )
  report["seconds"]["latent_2d"] = time.perf_counter() - clock
  if run.variational and iwae_k:
    clock = time.perf_counter()
    # The -ELBO of the same images shows how much tighter the bound got.
    report[f"iwae_nll_k{iwae_k}"], report["iwae_examples_nelbo"] = (
      runs.iwae_nll(run, eval_ds, iwae_k, iwae_examples, iwae_rng)
    )
    report["iwae_k"] = iwae_k
    report["iwae_examples"] = min(
      iwae_examples or len(test_set.labels), len(test_set.labels)
    )
    report["seconds"]["iwae"] = time.perf_counter() - clock

  curves = learning_curves_figure(run)
  if curves is None:
    report["skipped"]["learning_curves.png"] = "no scalars in the event files"
  else:
    figures["learning_curves.png"] = curves
  report["seconds"]["total"] = time.perf_counter() - start
  outputs.write_analysis(out_dir, figures, report)
  return report
