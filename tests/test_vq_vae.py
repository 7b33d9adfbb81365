"""The VQ-VAE: its quantizer, EMA codebook and dead-code restart against
NumPy on hand-made batches, its objective's terms against values computed
apart, and a tiny run through the loop, analyzed and resumed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from test_exact_resume import check_sigterm_then_rerun_is_exact
import testbed
from vae_jax.analysis import event_logs
from vae_jax.analysis import plots
from vae_jax.analysis import report as report_lib
from vae_jax.models import vq_vae as vq_model
from vae_jax.objectives import objective as objective_lib
from vae_jax.objectives import vq_vae as vq_objective
from vae_jax.trainers import loop
from vae_jax.trainers import run_config

NUM_EXAMPLES = 40  # Mock MNIST's train and test splits.
# A narrow VQ-VAE: 28x28 -> 7x7 grids of 3-dim vectors, 8 entries.
TINY_VQ_VAE = {
  "model.channels": (4, 8),
  "model.residual_channels": 4,
  "model.num_residual_blocks": 1,
  "model.embedding_dim": 3,
  "model.codebook_size": 8,
  "model.conv_impl": "xla",  # Quicker to compile than CPU's matmul forms.
}


def test_shapes_follow_the_declared_grid():
  config = testbed.make_tiny_config(
    base=run_config.default_config("vq_vae"), model=TINY_VQ_VAE
  )
  parts = testbed.assemble(config)
  assert parts.model.grid_shape == (7, 7, 3)
  assert parts.model.codebook_size == 8
  images = jnp.zeros((2, 28, 28, 1))
  variables = parts.model.init(jax.random.PRNGKey(0), images)
  grid = parts.model.apply(variables, images, method="encode")
  quantization = parts.model.apply(variables, grid, method="quantize")
  assert grid.shape == quantization.quantized.shape == (2, 7, 7, 3)
  assert quantization.indices.shape == (2, 7, 7)
  logits = parts.model.apply(variables, quantization.quantized, method="decode")
  assert logits.shape == images.shape
  # An 'ema' codebook is statistics, not parameters.
  assert "quantizer" not in variables["params"]
  assert variables["batch_stats"]["quantizer"]["embeddings"].shape == (8, 3)


def quantizer(codebook_update="ema", **fields):
  return vq_model.VectorQuantizer(
    codebook_size=4, embedding_dim=2, codebook_update=codebook_update, **fields
  )


def numpy_nearest(flat_z, codebook):
  distances = np.square(flat_z[:, None, :] - codebook[None]).sum(-1)
  return distances.argmin(axis=1)


def test_quantization_returns_the_nearest_codebook_entry():
  module = vq_model.VectorQuantizer(
    codebook_size=5, embedding_dim=4, codebook_update="loss"
  )
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 4))
  variables = module.init(jax.random.PRNGKey(0), z)
  quantization = module.apply(variables, z)
  codebook = np.asarray(variables["params"]["codebook"])
  expected = numpy_nearest(np.asarray(z).reshape(-1, 4), codebook)
  assert len(set(expected)) > 1  # Not all one entry: a real choice.
  np.testing.assert_array_equal(quantization.indices.reshape(-1), expected)
  np.testing.assert_allclose(
    np.asarray(quantization.quantized).reshape(-1, 4),
    codebook[expected],
    atol=1e-6,
  )


def test_straight_through_gradient_is_the_identity():
  module = quantizer("loss")
  z = jax.random.normal(jax.random.PRNGKey(1), (1, 2, 2, 2))
  variables = module.init(jax.random.PRNGKey(0), z)
  jacobian = jax.jacobian(lambda z: module.apply(variables, z).quantized)(z)
  quantized = module.apply(variables, z).quantized
  assert not np.allclose(quantized, z)  # Quantized in value...
  np.testing.assert_array_equal(
    np.asarray(jacobian).reshape(z.size, z.size), np.eye(z.size)
  )  # ... and the identity in gradient.


# Entries 0..3 and a batch of six vectors: entries 0 and 2 are chosen.
EMBEDDINGS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [9.0, 9.0]])
BATCH = np.array(
  [[0.2, -0.1], [0.1, 0.3], [-0.3, 0.2], [0.1, 3.5], [0.4, 4.2], [-0.2, 3.9]]
)


def hand_made_stats(steps_unused=(0, 0, 0, 0)):
  return {
    "embeddings": EMBEDDINGS,
    "cluster_size": np.array([3.0, 0.5, 2.0, 0.01]),
    "embedding_sums": EMBEDDINGS * np.array([[3.0], [0.5], [2.0], [0.01]]),
    "steps_unused": np.array(steps_unused, np.int32),
  }


def numpy_ema(stats, flat_z, decay, epsilon):
  """The paper's appendix with Sonnet's Laplace smoothing, in float64."""
  indices = numpy_nearest(flat_z, stats["embeddings"])
  one_hot = np.eye(len(stats["cluster_size"]))[indices]
  cluster_size = decay * stats["cluster_size"] + (1 - decay) * one_hot.sum(0)
  sums = decay * stats["embedding_sums"] + (1 - decay) * one_hot.T @ flat_z
  total = cluster_size.sum()
  smoothed = (cluster_size + epsilon) / (total + len(cluster_size) * epsilon)
  return {
    "cluster_size": cluster_size,
    "embedding_sums": sums,
    "embeddings": sums / (smoothed * total)[:, None],
  }


def ema_step(stats, rng=None, **fields):
  """The module's update of `stats` on BATCH, as a training step runs it."""
  module = quantizer("ema", ema_decay=0.9, ema_epsilon=0.05, **fields)
  grid = jnp.asarray(BATCH.reshape(1, 2, 3, 2), jnp.float32)
  variables = {"batch_stats": jax.tree.map(jnp.asarray, stats)}
  _, updates = module.apply(
    variables, grid, train=True, rng=rng, mutable=["batch_stats"]
  )
  return jax.tree.map(np.asarray, updates["batch_stats"])


def test_ema_update_matches_its_formula():
  stats = hand_made_stats()
  updated = ema_step(stats)
  expected = numpy_ema(stats, BATCH, decay=0.9, epsilon=0.05)
  for name, value in expected.items():
    np.testing.assert_allclose(
      updated[name], value, rtol=1e-5, atol=1e-6, err_msg=name
    )
  # The unchosen entries moved only by the smoothing: they count on.
  np.testing.assert_array_equal(updated["steps_unused"], [0, 1, 0, 1])
  # Evaluation reads the codebook and writes nothing.
  module = quantizer("ema")
  grid = jnp.asarray(BATCH.reshape(1, 2, 3, 2), jnp.float32)
  evaluated = module.apply({"batch_stats": stats}, grid)
  np.testing.assert_array_equal(
    evaluated.indices.reshape(-1), [0] * 3 + [2] * 3
  )


def test_dead_code_restart_replaces_exactly_the_unused_codes():
  # Entry 1 reaches 3 unused steps now; entry 3 only 2; 0 and 2 are chosen.
  stats = hand_made_stats(steps_unused=(5, 2, 5, 1))
  rng = jax.random.PRNGKey(7)
  restarted = ema_step(stats, rng, dead_code_restart_steps=3)
  expected = numpy_ema(stats, BATCH, decay=0.9, epsilon=0.05)
  kept = [0, 2, 3]
  for name, value in expected.items():
    np.testing.assert_allclose(
      restarted[name][kept], value[kept], rtol=1e-5, atol=1e-6
    )
  new_code = restarted["embeddings"][1]
  # One of the batch's encoder outputs, with statistics restarted from it.
  assert np.min(np.abs(BATCH - new_code).sum(axis=1)) < 1e-6
  np.testing.assert_array_equal(restarted["embedding_sums"][1], new_code)
  assert restarted["cluster_size"][1] == 1.0
  np.testing.assert_array_equal(restarted["steps_unused"], [0, 0, 0, 2])
  # Deterministic given the step's rng; without the restart, nothing moves.
  again = ema_step(stats, rng, dead_code_restart_steps=3)
  np.testing.assert_array_equal(again["embeddings"], restarted["embeddings"])
  plain = ema_step(stats)
  np.testing.assert_allclose(plain["embeddings"][1], expected["embeddings"][1])
  np.testing.assert_array_equal(plain["steps_unused"], [0, 3, 0, 2])


def test_codebook_and_commitment_losses_and_their_gradients():
  z = jnp.array([[[[1.0, 2.0]], [[0.5, -1.0]]]])  # [1, 2, 1, 2].
  codes = jnp.array([[[[0.0, 0.0]], [[1.0, 1.0]]]])
  # ||z - e||² summed over the grid: 1 + 4 + 0.25 + 4.
  codebook, commitment = vq_objective.latent_terms(
    z, codes, learned_by_loss=True
  )
  np.testing.assert_allclose(codebook, [9.25])
  np.testing.assert_allclose(commitment, [9.25])
  grads = [
    jax.grad(
      lambda z, codes, i=i: vq_objective.latent_terms(
        z, codes, learned_by_loss=True
      )[i].sum(),
      argnums=(0, 1),
    )(z, codes)
    for i in (0, 1)
  ]
  zeros = np.zeros(z.shape)
  # The codebook loss moves the entries only, the commitment the encoder.
  np.testing.assert_allclose(grads[0][0], zeros)
  np.testing.assert_allclose(grads[0][1], 2 * (codes - z))
  np.testing.assert_allclose(grads[1][0], 2 * (z - codes))
  np.testing.assert_allclose(grads[1][1], zeros)
  ema_codebook, _ = vq_objective.latent_terms(z, codes, learned_by_loss=False)
  np.testing.assert_array_equal(ema_codebook, [0.0])


def test_codebook_use_of_a_hand_made_batch():
  perplexity, used = vq_objective.codebook_use(jnp.array([[0, 0], [1, 3]]), 5)
  frequencies = np.array([0.5, 0.25, 0.25])
  np.testing.assert_allclose(
    perplexity, np.exp(-np.sum(frequencies * np.log(frequencies))), rtol=1e-6
  )
  assert used == 3


@pytest.mark.parametrize("codebook_update", ["loss", "ema"])
def test_terms_against_the_model_applied_piece_by_piece(codebook_update):
  config = testbed.make_tiny_config(
    {"model.codebook_update": codebook_update},
    base=run_config.default_config("vq_vae"),
    model=TINY_VQ_VAE,
  )
  parts = testbed.assemble(config)
  state = testbed.initial_state(config, parts, (28, 28, 1), total_steps=1)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images = jax.random.bernoulli(jax.random.PRNGKey(3), 0.3, (2, 28, 28, 1))
  images = images.astype(jnp.float32)
  network = objective_lib.Network(parts.model, variables, False, "float32")
  terms, _ = vq_objective.terms(
    network, images, jax.random.PRNGKey(0), 0, loss_config=config.loss
  )
  apply = parts.model.apply
  z = np.asarray(apply(variables, images, method="encode"), np.float64)
  codebook = (
    state.params["quantizer"]["codebook"]
    if codebook_update == "loss"
    else state.batch_stats["quantizer"]["embeddings"]
  )
  codebook = np.asarray(codebook, np.float64)
  indices = numpy_nearest(z.reshape(-1, 3), codebook)
  codes = codebook[indices].reshape(z.shape)
  logits = np.asarray(
    apply(variables, jnp.asarray(codes, jnp.float32), method="decode")
  ).reshape(2, -1)
  x = np.asarray(images).reshape(2, -1)
  recon = np.sum(np.logaddexp(0, logits) - logits * x, axis=1)
  error = np.square(z - codes).reshape(2, -1).sum(axis=1)
  codebook_loss = error if codebook_update == "loss" else 0 * error
  expected = {
    "recon": recon,
    "commitment": 0.25 * error,
    "codebook": codebook_loss,
    "loss": recon + codebook_loss + 0.25 * error,
    "codes_used": np.full(2, len(set(indices))),
  }
  for name, value in expected.items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-4, err_msg=name)


def tiny_run_config(overrides=None):
  return testbed.make_tiny_config(
    {"model.dead_code_restart_steps": 2, **(overrides or {})},
    base=run_config.default_config("vq_vae"),
    model=TINY_VQ_VAE,
  )


def run(config, workdir):
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    return loop.train_and_evaluate(config, str(workdir))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A workdir of 5 steps (one epoch) of the tiny VQ-VAE, and its results."""
  workdir = tmp_path_factory.mktemp("vq_vae")
  config = tiny_run_config({"num_epochs": 1})
  config.input.data_dir = str(tmp_path_factory.mktemp("tfds"))
  return workdir, run(config, workdir)


def test_a_tiny_run_trains_finite_and_moves_the_ema_codebook(tiny_run):
  workdir, results = tiny_run
  assert results["steps"] == 5 and results["nonfinite_steps"] == 0
  for term in ("loss", "recon", "commitment", "mse", "perplexity"):
    assert np.isfinite(results[f"test_{term}"]), term
  assert 1 <= results["test_codes_used"] <= 8
  config = tiny_run_config()
  first = testbed.initial_state(
    config, testbed.assemble(config), (28, 28, 1), total_steps=5
  )
  trained = testbed.checkpoint_arrays(workdir, 5)
  for name in ("cluster_size", "embeddings", "embedding_sums"):
    (key,) = [
      key
      for key in trained
      if "batch_stats" in key and key.endswith(f"['{name}']")
    ]
    before = np.asarray(first.batch_stats["quantizer"][name])
    assert not np.allclose(trained[key], before), name


def test_analyze_reconstructs_and_skips_what_needs_a_prior(tiny_run):
  workdir, _ = tiny_run
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    report = report_lib.analyze(str(workdir), num=4, curve_samples=0)
  for name in ("reconstructions.png", "interpolation.png", "latent_2d.png"):
    assert (workdir / "analysis" / name).stat().st_size > 0, name
  for name in ("samples.png", "traversal.png", "kl_per_dim", "iwae"):
    assert "no prior over its codes" in report["skipped"][name], name
  assert not (workdir / "analysis" / "samples.png").exists()
  assert np.isfinite(report["test_perplexity"])
  assert report["likelihood_of"].startswith("no likelihood")


@pytest.mark.slow
def test_sigterm_then_rerun_equals_the_uninterrupted_run(tmp_path):
  """The EMA codebook and the restart counters continue exactly."""
  check_sigterm_then_rerun_is_exact(
    run, tiny_run_config, tmp_path, "steps_unused"
  )


def test_learning_curves_show_the_codebooks_use(tiny_run):
  """Panels of the entries in use and the perplexity, from the run's own
  logged scalars, beside its loss and MSE."""
  workdir, _ = tiny_run
  scalars = event_logs.read_scalars(str(workdir))
  figure = plots.learning_curves(scalars, False, "title", step=5)
  titles = [ax.get_title() for ax in figure.axes]
  assert titles == [
    "loss: the objective trained",
    "MSE on [0, 1] pixels",
    "codebook entries in use",
    "codebook perplexity",
  ]
  steps, values = scalars["test_codes_used"]
  (test_line,) = [
    line for line in figure.axes[2].get_lines() if line.get_label() == "test"
  ]
  np.testing.assert_array_equal(test_line.get_xdata(), steps)
  np.testing.assert_array_equal(test_line.get_ydata(), values)
