"""The prior over VQ-VAE codes: causality of its logits, its log-likelihood
against SciPy, ancestral sampling against a Markov chain's known
frequencies, and a short training run against the chain's entropy."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
import scipy.stats

from vae_jax import errors
from vae_jax.models import code_prior

GRID_SHAPE = (3, 4)
NUM_CODES = 8
# Two layers, so that a leak through attention in either is caught.
TINY_PRIOR = code_prior.CodePrior(
  codebook_size=NUM_CODES,
  grid_shape=GRID_SHAPE,
  width=32,
  num_layers=2,
  num_heads=2,
  mlp_ratio=2,
)


@pytest.fixture(scope="module")
def tiny_variables():
  return TINY_PRIOR.init(
    jax.random.PRNGKey(0), jnp.zeros((1, *GRID_SHAPE), jnp.int32)
  )


def random_codes(seed, num, grid_shape=GRID_SHAPE, num_codes=NUM_CODES):
  return np.random.default_rng(seed).integers(
    0, num_codes, (num, *grid_shape), dtype=np.int32
  )


def test_default_config_builds_the_vq_vae_grid_prior():
  prior = code_prior.build(code_prior.default_config(), (7, 7))
  codes = jnp.asarray(random_codes(0, 2, (7, 7), 64))
  variables = prior.init(jax.random.PRNGKey(0), codes)
  assert prior.apply(variables, codes).shape == (2, 7, 7, 64)
  with pytest.raises(errors.ConfigError, match="reads code grids"):
    code_prior.build(code_prior.default_config(), (7, 7, 16))
  config = code_prior.default_config()
  config.num_heads = 3
  with pytest.raises(errors.ConfigError, match="must divide model.width"):
    code_prior.build(config, (7, 7))


@pytest.mark.parametrize("position", [0, 3, 4, 7, 11])
def test_logits_depend_only_on_earlier_codes(tiny_variables, position):
  codes = random_codes(1, 3)
  changed = codes.copy()
  row, column = np.unravel_index(position, GRID_SHAPE)
  changed[:, row, column] = (codes[:, row, column] + 1) % NUM_CODES
  num_positions = np.prod(GRID_SHAPE)
  before, after = (
    np.asarray(TINY_PRIOR.apply(tiny_variables, grid)).reshape(
      3, num_positions, NUM_CODES
    )
    for grid in (codes, changed)
  )
  np.testing.assert_array_equal(
    before[:, : position + 1], after[:, : position + 1]
  )
  if position + 1 < num_positions:
    # The next position reads the changed code directly.
    assert np.abs(before[:, position + 1] - after[:, position + 1]).min() > 1e-4


def test_log_likelihood_matches_scipy():
  rng = np.random.default_rng(2)
  logits = rng.normal(scale=3.0, size=(4, *GRID_SHAPE, NUM_CODES))
  codes = random_codes(3, 4)
  log_probs = scipy.special.log_softmax(logits, axis=-1)
  expected = np.array(
    [
      sum(
        log_probs[b, r, c, codes[b, r, c]]
        for r in range(GRID_SHAPE[0])
        for c in range(GRID_SHAPE[1])
      )
      for b in range(4)
    ]
  )
  np.testing.assert_allclose(
    code_prior.log_likelihood(jnp.asarray(logits, jnp.float32), codes),
    expected,
    rtol=1e-5,
  )


# A Markov chain in raster order over 4 codes: p(c_0) and p(c_i | c_{i-1}).
CHAIN_INITIAL = np.array([0.1, 0.2, 0.3, 0.4])
CHAIN_TRANSITIONS = np.array(
  [
    [0.60, 0.30, 0.05, 0.05],
    [0.05, 0.70, 0.20, 0.05],
    [0.05, 0.05, 0.70, 0.20],
    [0.20, 0.05, 0.05, 0.70],
  ]
)


class MarkovChainLogits(nn.Module):
  """The chain's causal logits, with the interface of `CodePrior`."""

  initial_log_probs: tuple[float, ...]
  transition_log_probs: tuple[tuple[float, ...], ...]

  def __call__(self, codes: jax.Array, train: bool = False) -> jax.Array:
    batch_size, height, width = codes.shape
    flat_codes = codes.reshape(batch_size, height * width)
    num_codes = len(self.initial_log_probs)
    first = jnp.broadcast_to(
      jnp.asarray(self.initial_log_probs), (batch_size, 1, num_codes)
    )
    following = jnp.asarray(self.transition_log_probs)[flat_codes[:, :-1]]
    logits = jnp.concatenate([first, following], axis=1)
    return logits.reshape(batch_size, height, width, num_codes)


def chain_module(initial, transitions):
  return MarkovChainLogits(
    tuple(np.log(initial).tolist()),
    tuple(tuple(row) for row in np.log(transitions).tolist()),
  )


def tempered(probs, temperature):
  """softmax(log probs / T) along the last axis."""
  return scipy.special.softmax(np.log(probs) / temperature, axis=-1)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_reproduces_a_markov_chain(temperature):
  num = 3000
  grids = np.asarray(
    code_prior.sample_by_recomputing(
      chain_module(CHAIN_INITIAL, CHAIN_TRANSITIONS),
      {},
      jax.random.PRNGKey(4),
      num,
      GRID_SHAPE,
      temperature=temperature,
    )
  )
  assert grids.shape == (num, *GRID_SHAPE) and grids.dtype == np.int32
  flat = grids.reshape(num, -1)
  num_codes = len(CHAIN_INITIAL)
  first_counts = np.bincount(flat[:, 0], minlength=num_codes)
  expected_first = num * tempered(CHAIN_INITIAL, temperature)
  transition_counts = np.zeros((num_codes, num_codes))
  np.add.at(transition_counts, (flat[:, :-1], flat[:, 1:]), 1)
  expected_transitions = transition_counts.sum(axis=1, keepdims=True) * (
    tempered(CHAIN_TRANSITIONS, temperature)
  )
  # Pearson's statistic of the first codes and of each row of transitions
  # given its total: chi-square with (K - 1) + K (K - 1) degrees of freedom.
  statistic = np.sum(
    (first_counts - expected_first) ** 2 / expected_first
  ) + np.sum(
    (transition_counts - expected_transitions) ** 2 / expected_transitions
  )
  p_value = scipy.stats.chi2.sf(statistic, df=num_codes * num_codes - 1)
  assert p_value > 1e-3, (statistic, p_value)


def test_samples_are_a_function_of_the_rng(tiny_variables):
  def draw(seed):
    return np.asarray(
      code_prior.sample(
        TINY_PRIOR, tiny_variables["params"], jax.random.PRNGKey(seed), 4
      )
    )

  first = draw(5)
  np.testing.assert_array_equal(first, draw(5))
  assert (first != draw(6)).any()
  assert first.min() >= 0 and first.max() < NUM_CODES


def test_zero_temperature_takes_the_greedy_path(tiny_variables):
  num = 3
  greedy = np.zeros((num, *GRID_SHAPE), np.int32)
  for position in range(np.prod(GRID_SHAPE)):
    row, column = np.unravel_index(position, GRID_SHAPE)
    logits = np.asarray(TINY_PRIOR.apply(tiny_variables, greedy))
    greedy[:, row, column] = np.argmax(logits[:, row, column], axis=-1)
  sampled = code_prior.sample(
    TINY_PRIOR,
    tiny_variables["params"],
    jax.random.PRNGKey(7),
    num,
    temperature=0.0,
  )
  np.testing.assert_array_equal(sampled, greedy)


def test_cached_decoding_gives_the_whole_networks_logits(tiny_variables):
  """Fed a grid's codes one position at a time, the decode mode's logits
  are those the whole network gives at each position."""
  codes = random_codes(8, 5)
  whole = np.asarray(TINY_PRIOR.apply(tiny_variables, codes)).reshape(
    5, -1, NUM_CODES
  )
  decoder = TINY_PRIOR.clone(decode=True)
  flat = codes.reshape(5, -1)
  cache = decoder.init(jax.random.PRNGKey(0), flat)["cache"]
  cache = jax.tree.map(jnp.zeros_like, cache)
  inputs = np.concatenate([np.full((5, 1), NUM_CODES), flat[:, :-1]], axis=1)
  for position in range(flat.shape[1]):
    logits, updated = decoder.apply(
      {**tiny_variables, "cache": cache},
      inputs[:, position : position + 1],
      mutable=["cache"],
    )
    cache = updated["cache"]
    np.testing.assert_allclose(
      logits[:, 0], whole[:, position], rtol=1e-5, atol=1e-5, err_msg=position
    )


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_cached_sampling_draws_what_recomputing_draws(
  tiny_variables, temperature
):
  rng = jax.random.PRNGKey(11)
  cached = code_prior.sample(
    TINY_PRIOR, tiny_variables["params"], rng, 64, temperature
  )
  recomputed = code_prior.sample_by_recomputing(
    TINY_PRIOR, tiny_variables, rng, 64, GRID_SHAPE, temperature
  )
  np.testing.assert_array_equal(cached, recomputed)


def draw_chain(rng, num, initial, transitions, num_positions):
  """[num, num_positions] codes drawn from the chain with NumPy."""
  codes = np.zeros((num, num_positions), np.int32)
  codes[:, 0] = rng.choice(len(initial), size=num, p=initial)
  cumulative = np.cumsum(transitions, axis=1)
  for position in range(1, num_positions):
    uniform = rng.random((num, 1))
    rows = cumulative[codes[:, position - 1]]
    codes[:, position] = np.minimum(
      (uniform > rows).sum(axis=1), len(initial) - 1
    )
  return codes


def test_training_reaches_the_chain_entropy():
  # Started from its stationary distribution π, the chain's entropy per grid
  # is H(π) + (n - 1) Σ_a π(a) H(P[a]).
  eigenvalues, eigenvectors = np.linalg.eig(CHAIN_TRANSITIONS.T)
  stationary = np.real(eigenvectors[:, np.argmax(np.real(eigenvalues))])
  stationary /= stationary.sum()
  row_entropies = -np.sum(CHAIN_TRANSITIONS * np.log(CHAIN_TRANSITIONS), 1)
  grid_shape = (3, 3)
  num_positions = 9
  entropy = scipy.stats.entropy(stationary) + (num_positions - 1) * np.dot(
    stationary, row_entropies
  )

  rng = np.random.default_rng(8)
  train, held_out = (
    draw_chain(rng, 2048, stationary, CHAIN_TRANSITIONS, num_positions).reshape(
      -1, *grid_shape
    )
    for _ in range(2)
  )
  prior = code_prior.CodePrior(
    codebook_size=4,
    grid_shape=grid_shape,
    width=32,
    num_layers=1,
    num_heads=2,
    mlp_ratio=2,
  )
  params = prior.init(jax.random.PRNGKey(9), train[:1])["params"]
  optimizer = optax.adam(3e-3)
  optimizer_state = optimizer.init(params)

  def mean_log_loss(params, codes):
    logits = prior.apply({"params": params}, codes)
    return -jnp.mean(code_prior.log_likelihood(logits, codes))

  @jax.jit
  def step(params, optimizer_state, codes):
    loss, grads = jax.value_and_grad(mean_log_loss)(params, codes)
    updates, optimizer_state = optimizer.update(grads, optimizer_state)
    return optax.apply_updates(params, updates), optimizer_state, loss

  untrained = float(mean_log_loss(params, held_out))
  for index in range(300):
    batch = train[(index * 128) % len(train) :][:128]
    params, optimizer_state, _ = step(params, optimizer_state, batch)
  trained = float(mean_log_loss(params, held_out))
  # Untrained, the loss is about 16.5 nats per grid; the chain's entropy is
  # 8.5. Held-out cross-entropy is at least the entropy, up to the held-out
  # sample's noise (about 0.05 nats per grid): within 0.25 nats per grid
  # (0.03 per position) of it, the prior has learned the chain (0.01 to 0.13
  # over three data seeds).
  assert untrained > entropy + 3
  assert entropy - 0.15 < trained < entropy + 0.25, (trained, entropy)
