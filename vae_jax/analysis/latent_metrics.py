"""Numbers that describe a trained latent-variable model, from its codes.

Per-dimension KL and active units, how well the codes separate classes,
how varied its samples are, paths between codes (linear and spherical), and
and the importance-weighted (IWAE) estimate of log p(x) of Burda et al. (2016):

    log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k|x),   z_k ~ q(z|x),

a bound that is the ELBO at K = 1 and tightens to log p(x) as K grows.
"""

from collections.abc import Callable
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import manifold
from sklearn import metrics
from sklearn import model_selection
from sklearn import neighbors

# A latent dimension is active when its average KL exceeds this (nats).
ACTIVE_UNIT_NATS = 0.01
# Burda et al.'s (2016) definition: unit u is active when the variance over
# images x of its posterior mean E_q[u | x] exceeds this.
ACTIVE_UNIT_VARIANCE = 0.01


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
  """Average over images of KL(q(z_d|x) || N(0, 1)) for each dimension d."""
  return np.mean(0.5 * (np.exp(logvar) + np.square(mu) - 1.0 - logvar), axis=0)


def active_units_by_variance(mu: np.ndarray) -> int:
  """Units whose posterior means [N, D] vary over the images by more than
  ACTIVE_UNIT_VARIANCE."""
  return int(np.sum(np.var(mu, axis=0) > ACTIVE_UNIT_VARIANCE))


def class_separation(
  codes: np.ndarray, labels: np.ndarray, seed: int
) -> dict[str, float | str]:
  """5-fold 5-NN accuracy and silhouette score of `codes` grouped by label."""
  num_classes = len(np.unique(labels))
  if num_classes < 2 or len(labels) < 10:
    return {
      "skipped": f"{len(labels)} codes in {num_classes} classes are "
      "too few to compare classes"
    }
  folds = model_selection.KFold(5, shuffle=True, random_state=seed)
  classifier = neighbors.KNeighborsClassifier(n_neighbors=5)
  accuracy = model_selection.cross_val_score(
    classifier, codes, labels, cv=folds
  )
  return {
    "knn_accuracy": float(np.mean(accuracy)),
    "silhouette": float(metrics.silhouette_score(codes, labels)),
  }


def mean_pairwise_distance(images: np.ndarray) -> float:
  """Mean Euclidean distance between distinct pairs of flattened images.

  On [0, 1] pixels, 0 means identical images (a collapsed sampler).
  """
  flat = images.reshape(len(images), -1).astype(np.float64)
  squared = np.sum(flat**2, axis=1)
  distances = np.sqrt(
    np.maximum(squared[:, None] + squared[None, :] - 2 * flat @ flat.T, 0.0)
  )
  return float(distances[np.triu_indices(len(images), k=1)].mean())


# Codes that differ by no more than this in every dimension are one point:
# a collapsed posterior (a large KL weight), which t-SNE cannot map (its PCA
# initialization divides by the zero spread, and sklearn's Barnes-Hut code
# then crashes the process).
COLLAPSED_SPREAD = 1e-6


def embed_2d(codes: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
  """2-D coordinates of `codes`: their first two dimensions if they have two
  or are all one point, else t-SNE's; the method."""
  if codes.shape[1] == 2 or np.ptp(codes, axis=0).max() <= COLLAPSED_SPREAD:
    return codes[:, :2], "raw"
  perplexity = min(30.0, (len(codes) - 1) / 3)  # t-SNE needs fewer than n.
  # Barnes-Hut approximates the O(n^2) gradient for large n; for few
  # points the exact one is both faster and better.
  method = "exact" if len(codes) <= 200 else "barnes_hut"
  tsne = manifold.TSNE(
    2, perplexity=perplexity, init="pca", method=method, random_state=seed
  )
  return tsne.fit_transform(codes), "t-SNE"


def lerp(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Points (1 - t) start + t end, one row per t."""
  return (1 - t[:, None]) * start + t[:, None] * end


def slerp(start: np.ndarray, end: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation: along the great circle, for Gaussian codes.

  Under N(0, I) a straight line passes through the low-norm middle no sample
  comes from; slerp keeps norms typical (White, 2016).
  """
  cos = np.dot(start, end) / (
    np.linalg.norm(start) * np.linalg.norm(end) + 1e-12
  )
  angle = np.arccos(np.clip(cos, -1.0, 1.0))
  if np.sin(angle) < 1e-6:  # (Anti)parallel: any path is as good; go straight.
    return lerp(start, end, t)
  return (
    np.sin((1 - t) * angle)[:, None] * start + np.sin(t * angle)[:, None] * end
  ) / np.sin(angle)


def interpolation_pairs(
  labels: np.ndarray, num_pairs: int = 4
) -> list[tuple[int, int]]:
  """Indices of image pairs: of different classes, then one of the same.

  Pair p joins the (2p // C)-th images of classes 2p and 2p + 1 (mod C,
  the number of classes), so 10 digits give 0-1, 2-3, 4-5 and a binary
  attribute gives three different 0-1 pairs.
  """
  classes = np.unique(labels)
  members = [np.flatnonzero(labels == c) for c in classes]
  pairs = []
  if len(classes) > 1:
    for p in range(num_pairs - 1):
      first, second = 2 * p % len(classes), (2 * p + 1) % len(classes)
      rank = 2 * p // len(classes)
      if rank < min(len(members[first]), len(members[second])):
        pairs.append((int(members[first][rank]), int(members[second][rank])))
  largest = max(members, key=len)
  if len(largest) > 1:
    pairs.append((int(largest[0]), int(largest[1])))
  return pairs


# log_weights_fn(model, x, key, num) -> log w [num, B] of `num` draws
# z ~ q(z|x): log p(x, z) - log q(z|x). x: arrays [B, ...], or a pytree of
# them (images and their classes).
LogWeightsFn = Callable[[Any, jax.Array, jax.Array, int], jax.Array]


def _batch_estimates(
  model: Any,
  x: jax.Array,
  rng: jax.Array,
  *,
  log_weights_fn: LogWeightsFn,
  num_samples: int,
  chunk_size: int,
) -> tuple[jax.Array, jax.Array]:
  """logsumexp and sum over `num_samples` log weights per image of `x`,
  drawn `chunk_size` at a time (the last chunk masked) in one loop."""
  num_chunks = math.ceil(num_samples / chunk_size)

  def add_chunk(j, totals):
    running, total = totals
    weights = log_weights_fn(model, x, jax.random.fold_in(rng, j), chunk_size)
    valid = (j * chunk_size + jnp.arange(chunk_size) < num_samples)[:, None]
    chunk_logsumexp = jax.nn.logsumexp(
      jnp.where(valid, weights, -jnp.inf), axis=0
    )
    return (
      jnp.logaddexp(running, chunk_logsumexp),
      total + jnp.sum(jnp.where(valid, weights, 0.0), axis=0),
    )

  batch_shape = jax.tree.leaves(x)[0].shape[:1]
  start = (jnp.full(batch_shape, -jnp.inf), jnp.zeros(batch_shape))
  return jax.lax.fori_loop(0, num_chunks, add_chunk, start)


@functools.partial(
  jax.jit, static_argnames=("log_weights_fn", "num_samples", "chunk_size")
)
def _split_estimates(
  model: Any,
  batches: jax.Array,
  rng: jax.Array,
  *,
  log_weights_fn: LogWeightsFn,
  num_samples: int,
  chunk_size: int,
) -> tuple[jax.Array, jax.Array]:
  """`_batch_estimates` of every batch of `batches` (arrays [num_batches,
  B, ...], or a pytree of them), as one compiled loop."""

  def one_batch(i):
    return _batch_estimates(
      model,
      jax.tree.map(lambda b: b[i], batches),
      jax.random.fold_in(rng, i),
      log_weights_fn=log_weights_fn,
      num_samples=num_samples,
      chunk_size=chunk_size,
    )

  return jax.lax.map(
    one_batch, jnp.arange(jax.tree.leaves(batches)[0].shape[0])
  )


def importance_weighted_log_likelihood(
  log_weights_fn: LogWeightsFn,
  model: Any,
  x: np.ndarray,
  rng: jax.Array,
  *,
  num_samples: int,
  batch_size: int,
  chunk_size: int,
) -> tuple[np.ndarray, np.ndarray]:
  """The K-sample IWAE estimate of log p(x) of every example of `x` (arrays
  [N, ...], or a pytree of them: `log_weights_fn`'s input), with
  K = `num_samples`, and the ELBO from the same K draws (the mean log
  weight): the gap between the two is what the K samples gained.

  The whole of `x` is one compiled loop: over batches of `batch_size`
  examples, and for each over chunks of `chunk_size` draws folded into a
  running logsumexp, so memory is one chunk's (chunk_size * batch_size
  draws) whatever K is. `log_weights_fn` is a static argument: pass the same
  function object every call to compile once.
  """
  count = len(jax.tree.leaves(x)[0])
  num_batches = math.ceil(count / batch_size)

  def batched(array: np.ndarray) -> jax.Array:
    padded = np.zeros((num_batches * batch_size, *array.shape[1:]), array.dtype)
    padded[:count] = array  # Padding images are estimated, then dropped.
    return jnp.asarray(
      padded.reshape(num_batches, batch_size, *array.shape[1:])
    )

  running, total = _split_estimates(
    model,
    jax.tree.map(batched, x),
    rng,
    log_weights_fn=log_weights_fn,
    num_samples=num_samples,
    chunk_size=min(chunk_size, num_samples),
  )
  return (
    np.asarray(running).reshape(-1)[:count] - math.log(num_samples),
    np.asarray(total).reshape(-1)[:count] / num_samples,
  )
