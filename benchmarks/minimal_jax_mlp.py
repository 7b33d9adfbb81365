r"""The mnist_linear job in as little JAX as it takes, to time the main job by.

    python benchmarks/minimal_jax_mlp.py

The seed's MNIST VAE (784-400-200-20, Bernoulli likelihood summed per image
plus KL, Adam 1e-3, batch 128, 30 epochs) with nothing else: the split is
held on the device, each epoch is one `lax.scan` over its batches, and the
test split is evaluated once per epoch. No checkpoints, logs, image grids or
finite-step guard: what `python -m vae_jax.main --config=configs/
mnist_linear.py` costs beyond this is theirs (see benchmarks/vs_pytorch.py
--whole_job). Reads MNIST from TFDS's default data dir.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_datasets as tfds

SIZES = (784, 400, 200)
LATENT = 20
BATCH = 128
EPOCHS = 30


def init_params(rng):
  """Dense layers as PyTorch's nn.Linear initializes them."""
  shapes = (
    list(zip(SIZES[:-1], SIZES[1:]))
    + [(SIZES[-1], LATENT)] * 2
    + list(zip((LATENT, *SIZES[:0:-1]), SIZES[::-1]))
  )
  params = []
  for key, (n_in, n_out) in zip(jax.random.split(rng, len(shapes)), shapes):
    bound = 1 / np.sqrt(n_in)
    w_key, b_key = jax.random.split(key)
    params.append(
      (
        jax.random.uniform(w_key, (n_in, n_out), minval=-bound, maxval=bound),
        jax.random.uniform(b_key, (n_out,), minval=-bound, maxval=bound),
      )
    )
  return params


def loss_fn(params, x, rng):
  """Negative ELBO summed over the batch."""
  h = x
  for w, b in params[:2]:
    h = jax.nn.relu(h @ w + b)
  mu = h @ params[2][0] + params[2][1]
  logvar = h @ params[3][0] + params[3][1]
  z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mu.shape)
  h = z
  for w, b in params[4:-1]:
    h = jax.nn.relu(h @ w + b)
  logits = h @ params[-1][0] + params[-1][1]
  bce = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x))
  kl = -0.5 * jnp.sum(1 + logvar - mu**2 - jnp.exp(logvar))
  return bce + kl


def main():
  splits = tfds.load("mnist", batch_size=-1, as_supervised=True)
  train, test = (
    jnp.asarray(np.asarray(splits[s][0]).reshape(-1, 784) / np.float32(255))
    for s in ("train", "test")
  )
  optimizer = optax.adam(1e-3)
  params = init_params(jax.random.PRNGKey(0))
  opt_state = optimizer.init(params)
  steps = len(train) // BATCH

  @jax.jit
  def epoch(params, opt_state, rng):
    order = jax.random.permutation(rng, len(train))[: steps * BATCH]

    def step(carry, batch_indices):
      params, opt_state, rng = carry
      rng, step_rng = jax.random.split(rng)
      grads = jax.grad(
        lambda p: loss_fn(p, train[batch_indices], step_rng) / BATCH
      )(params)
      updates, opt_state = optimizer.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state, rng), None

    (params, opt_state, _), _ = jax.lax.scan(
      step, (params, opt_state, rng), order.reshape(steps, BATCH)
    )
    return params, opt_state

  @jax.jit
  def test_loss(params, rng):
    return loss_fn(params, test, rng) / len(test)

  start = time.perf_counter()
  for e in range(EPOCHS):
    params, opt_state = epoch(params, opt_state, jax.random.PRNGKey(e + 1))
    print(
      f"epoch {e + 1} test_loss "
      f"{float(test_loss(params, jax.random.PRNGKey(1000 + e))):.2f}",
      flush=True,
    )
  print(f"{EPOCHS} epochs in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
  main()
