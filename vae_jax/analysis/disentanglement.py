"""Disentanglement metrics of a representation of discrete ground truth.

MIG (Chen et al., 2018), the FactorVAE score (Kim & Mnih, 2018) and DCI
(Eastwood & Williams, 2018), by the protocol of disentanglement_lib
(Locatello et al., "Challenging Common Assumptions in the Unsupervised
Learning of Disentangled Representations", ICML 2019): its discretization,
sample counts and classifiers, from `evaluation/metrics/{mig,factor_vae,dci,
utils}.py` and `config/unsupervised_study_v1/metric_configs/*.gin`.

The ground truth is the full product grid of `factor_sizes` (dSprites:
(1, 3, 6, 40, 32, 32)), drawn uniformly. Factors of size 1 carry no
information and are left out of every score, as disentanglement_lib's
dSprites leaves out its colour. The representation is a callable
`codes_of(factor_classes [N, F] int) -> codes [N, D]`: a trained model
encodes the images at those factors; a test computes codes from them.
"""

from collections.abc import Callable, Sequence
import os

import joblib
import numpy as np
from scipy import stats
from sklearn import ensemble
from sklearn import metrics

# codes_of(factor classes [N, F] int) -> codes [N, D] (posterior means).
CodesOf = Callable[[np.ndarray], np.ndarray]

# The protocol's constants, each the keyword default of its metric; tests
# shrink the counts by passing smaller ones.
# mig.gin: discretizer.num_bins (utils._histogram_discretize).
NUM_BINS = 20
# mig.gin: mig.num_train (mig.compute_mig).
MIG_NUM_POINTS = 10_000
# factor_vae_metric.gin: factor_vae_score.num_variance_estimate.
FACTOR_VAE_VARIANCE_POINTS = 10_000
# factor_vae_metric.gin: factor_vae_score.num_train and .num_eval (votes).
FACTOR_VAE_TRAIN_VOTES = 10_000
FACTOR_VAE_EVAL_VOTES = 5_000
# factor_vae_metric.gin: factor_vae_score.batch_size, the points of one vote.
FACTOR_VAE_BATCH_SIZE = 64
# factor_vae_metric.gin: prune_dims.threshold. factor_vae._prune_dims keeps
# a dimension when its standard deviation (not its variance) reaches this.
COLLAPSED_STD = 0.05
# dci.gin: dci.num_train and dci.num_test.
DCI_TRAIN_POINTS = 10_000
DCI_TEST_POINTS = 5_000
# dci.disentanglement_per_code adds this to the importances before their
# entropy, so a code of no importance at all reads as uniform, not 0/0.
IMPORTANCE_EPSILON = 1e-11
# All three .gin files: evaluation.random_seed.
SEED = 0

# Factor rows per call of codes_of: 100 FactorVAE votes, so an encoder sees
# a bounded batch of images whatever the sample counts.
POINTS_PER_CALL = 6_400


def _informative_factors(factor_sizes: Sequence[int]) -> np.ndarray:
  """Indices of the factors with more than one value."""
  informative = np.flatnonzero(np.asarray(factor_sizes) > 1)
  if len(informative) < 2:
    raise ValueError(
      "disentanglement needs at least 2 factors of more than one value, got "
      f"factor_sizes={tuple(factor_sizes)}"
    )
  return informative


def _sample_factors(
  factor_sizes: Sequence[int], num_points: int, rng: np.random.Generator
) -> np.ndarray:
  """Factor classes [num_points, F], each uniform over its values."""
  return rng.integers(0, factor_sizes, size=(num_points, len(factor_sizes)))


def _codes(codes_of: CodesOf, factors: np.ndarray) -> np.ndarray:
  """codes_of's codes [N, D] of `factors` [N, F], POINTS_PER_CALL at a time."""
  codes = np.concatenate(
    [
      np.asarray(codes_of(factors[start : start + POINTS_PER_CALL]), np.float64)
      for start in range(0, len(factors), POINTS_PER_CALL)
    ]
  )
  if codes.ndim != 2 or codes.shape[0] != len(factors) or codes.shape[1] < 2:
    raise ValueError(
      f"codes_of must return codes [N={len(factors)}, D >= 2], got shape "
      f"{codes.shape}"
    )
  return codes


def discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
  """Bin indices [N, D] in 1..num_bins of each code dimension [N, D], over
  num_bins equal-width bins spanning that dimension's range."""
  # Dropping the last edge puts the maximum in the last bin, not past it.
  return np.stack(
    [
      np.digitize(column, np.histogram_bin_edges(column, num_bins)[:-1])
      for column in codes.T
    ],
    axis=1,
  )


def mutual_information(
  codes_of: CodesOf,
  factor_sizes: Sequence[int],
  *,
  num_points: int = MIG_NUM_POINTS,
  num_bins: int = NUM_BINS,
  seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray]:
  """What MIG scores: (information [D, F], entropy [F]), in nats.

  information[d, f] is the plug-in mutual information of code dimension d,
  discretized into num_bins equal-width bins, with factor f, on num_points
  uniform draws of the factors; entropy[f] is factor f's plug-in entropy on
  the same draws. Both are 0 for a factor of one value. `mig` with the same
  arguments scores these very numbers.
  """
  informative = _informative_factors(factor_sizes)
  factors = _sample_factors(
    factor_sizes, num_points, np.random.default_rng(seed)
  )
  binned = discretize(_codes(codes_of, factors), num_bins)
  information = np.zeros((binned.shape[1], len(factor_sizes)))
  entropy = np.zeros(len(factor_sizes))
  for index in informative:
    factor = factors[:, index]
    information[:, index] = [
      metrics.mutual_info_score(factor, code) for code in binned.T
    ]
    entropy[index] = metrics.mutual_info_score(factor, factor)
  return information, entropy


def mig(
  codes_of: CodesOf,
  factor_sizes: Sequence[int],
  *,
  num_points: int = MIG_NUM_POINTS,
  num_bins: int = NUM_BINS,
  seed: int = SEED,
) -> dict[str, float]:
  """The mutual information gap: for each factor, the mutual information of
  its best discretized code dimension less that of its second best, over the
  factor's entropy; "mig" averages it over the factors, "mig_factor_<i>" is
  factor i's (an index into factor_sizes).

  A factor of more than num_bins values shares bins between values, so even
  the factor's own value as a code scores below 1.
  """
  information, entropy = mutual_information(
    codes_of, factor_sizes, num_points=num_points, num_bins=num_bins, seed=seed
  )
  gaps = {}
  for index in _informative_factors(factor_sizes):
    ranked = np.sort(information[:, index])
    gaps[f"mig_factor_{index}"] = float(
      (ranked[-1] - ranked[-2]) / entropy[index]
    )
  return {"mig": float(np.mean(list(gaps.values()))), **gaps}


def _vote_counts(
  codes_of: CodesOf,
  variances: np.ndarray,
  factor_sizes: Sequence[int],
  num_votes: int,
  batch_size: int,
  rng: np.random.Generator,
) -> np.ndarray:
  """Votes [informative factors, D]: each fixes a random informative factor
  at a random value over batch_size points and votes for the code dimension
  whose variance, relative to `variances` [D], is least."""
  informative = _informative_factors(factor_sizes)
  fixed = rng.integers(0, len(informative), num_votes)
  factors = _sample_factors(factor_sizes, num_votes * batch_size, rng)
  factors = factors.reshape(num_votes, batch_size, len(factor_sizes))
  votes_index = np.arange(num_votes)
  # A uniform value of the held factor: its class at the vote's first point.
  factors[votes_index, :, informative[fixed]] = factors[
    votes_index, 0, informative[fixed]
  ][:, None]
  codes = codes_of(factors.reshape(num_votes * batch_size, -1))
  codes = codes.reshape(num_votes, batch_size, -1)
  least_varied = np.argmin(np.var(codes, axis=1, ddof=1) / variances, axis=1)
  votes = np.zeros((len(informative), len(variances)), np.int64)
  np.add.at(votes, (fixed, least_varied), 1)
  return votes


def factor_vae_score(
  codes_of: CodesOf,
  factor_sizes: Sequence[int],
  *,
  num_variance_points: int = FACTOR_VAE_VARIANCE_POINTS,
  num_train_votes: int = FACTOR_VAE_TRAIN_VOTES,
  num_eval_votes: int = FACTOR_VAE_EVAL_VOTES,
  batch_size: int = FACTOR_VAE_BATCH_SIZE,
  seed: int = SEED,
) -> dict[str, float]:
  """The FactorVAE score: the accuracy of the majority-vote classifier from
  a code dimension to the factor held fixed when that dimension varied least
  (variances over the codes' own, dimensions under COLLAPSED_STD left out).

  "eval_accuracy", on votes the classifier was not built from, is the score;
  chance is 1 / (the number of factors of more than one value).
  """
  rng = np.random.default_rng(seed)
  factors = _sample_factors(factor_sizes, num_variance_points, rng)
  variances = np.var(_codes(codes_of, factors), axis=0, ddof=1)
  active = np.sqrt(variances) >= COLLAPSED_STD
  if not active.any():  # A collapsed representation separates nothing.
    return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

  def active_codes_of(factors: np.ndarray) -> np.ndarray:
    return _codes(codes_of, factors)[:, active]

  def votes(num_votes: int) -> np.ndarray:
    return _vote_counts(
      active_codes_of,
      variances[active],
      factor_sizes,
      num_votes,
      batch_size,
      rng,
    )

  train_votes = votes(num_train_votes)
  # Each dimension's class: the factor that won most of its training votes.
  classifier = np.argmax(train_votes, axis=0)

  def accuracy(votes: np.ndarray) -> float:
    return float(
      votes[classifier, np.arange(votes.shape[1])].sum() / votes.sum()
    )

  return {
    "train_accuracy": accuracy(train_votes),
    "eval_accuracy": accuracy(votes(num_eval_votes)),
    "num_active_dims": int(active.sum()),
  }


def _weighted_concentration(importance: np.ndarray) -> float:
  """1 - the entropy of each row's share of importance [rows, columns] (log
  base: the number of columns, so 1 is one column, 0 all alike), averaged
  with weights the rows' share of the total importance."""
  concentration = 1.0 - stats.entropy(
    importance + IMPORTANCE_EPSILON, base=importance.shape[1], axis=1
  )
  total = importance.sum()
  if total == 0.0:  # Nothing predicts anything: weigh the rows alike.
    return float(np.mean(concentration))
  return float(np.sum(concentration * importance.sum(axis=1) / total))


def dci_disentanglement(importance: np.ndarray) -> float:
  """DCI disentanglement of an importance matrix [code dims, factors]: how
  much each code dimension serves one factor only."""
  return _weighted_concentration(importance)


def dci_completeness(importance: np.ndarray) -> float:
  """DCI completeness of an importance matrix [code dims, factors]: how much
  each factor is served by one code dimension only."""
  return _weighted_concentration(importance.T)


def _boosted_trees(
  codes: np.ndarray, classes: np.ndarray, seed: int
) -> ensemble.GradientBoostingClassifier:
  """sklearn's default gradient-boosted trees, as disentanglement_lib's,
  fitted to predict `classes` [N] from `codes` [N, D]."""
  # A fixed random_state makes the trees' tie-breaks, so the score,
  # repeatable; disentanglement_lib leaves it unset.
  classifier = ensemble.GradientBoostingClassifier(random_state=seed)
  return classifier.fit(codes, classes)


def dci(
  codes_of: CodesOf,
  factor_sizes: Sequence[int],
  *,
  num_train: int = DCI_TRAIN_POINTS,
  num_test: int = DCI_TEST_POINTS,
  seed: int = SEED,
) -> dict[str, float]:
  """DCI disentanglement and completeness from the feature importances of
  one gradient-boosted classifier per factor (sklearn's defaults, as
  disentanglement_lib), and informativeness: the classifiers' mean accuracy
  on their training points and on held-out ones.

  The slowest of the three: on dSprites, 5 factors of up to 40 classes, each
  class 100 boosted trees on 10,000 points.
  """
  informative = _informative_factors(factor_sizes)
  rng = np.random.default_rng(seed)
  train_factors = _sample_factors(factor_sizes, num_train, rng)
  train_codes = _codes(codes_of, train_factors)
  test_factors = _sample_factors(factor_sizes, num_test, rng)
  test_codes = _codes(codes_of, test_factors)
  # One classifier per factor, each fitted in a process of its own: the
  # fits are independent and single-threaded, and take minutes.
  classifiers = joblib.Parallel(n_jobs=min(len(informative), os.cpu_count()))(
    joblib.delayed(_boosted_trees)(train_codes, train_factors[:, index], seed)
    for index in informative
  )
  importance = np.stack(
    [np.abs(classifier.feature_importances_) for classifier in classifiers],
    axis=1,
  )
  train_accuracy = [
    classifier.score(train_codes, train_factors[:, index])
    for classifier, index in zip(classifiers, informative)
  ]
  test_accuracy = [
    classifier.score(test_codes, test_factors[:, index])
    for classifier, index in zip(classifiers, informative)
  ]
  return {
    "disentanglement": dci_disentanglement(importance),
    "completeness": dci_completeness(importance),
    "informativeness_train": float(np.mean(train_accuracy)),
    "informativeness_test": float(np.mean(test_accuracy)),
  }
