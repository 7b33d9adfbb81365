"""MIG, the FactorVAE score and DCI, on representations of known answers."""

import numpy as np
import pytest
from scipy import stats

from vae_jax.analysis import disentanglement

# A factor of one value (like dSprites' colour) and 4 that vary, each of at
# most 20 values, so MIG's 20 bins keep every value apart.
FACTOR_SIZES = (1, 3, 4, 5, 6)
INFORMATIVE = np.array(FACTOR_SIZES) > 1
CHANCE = 1 / INFORMATIVE.sum()
# Counts far below the protocol's, for seconds on a busy CPU; votes are
# cheap, so enough of them to pin chance to about ±0.01.
MIG_POINTS = {"num_points": 2_000}
VOTES = {
  "num_variance_points": 1_000,
  "num_train_votes": 2_000,
  "num_eval_votes": 2_000,
}
DCI_POINTS = {"num_train": 400, "num_test": 200}
# Rotates every informative factor into every unit alike: all entries ±1/2.
HADAMARD = np.array(
  [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]
)
HADAMARD = HADAMARD / 2


def standardized(factors):
  """Each informative factor's class as one unit of mean 0, variance 1."""
  sizes = np.array(FACTOR_SIZES)[INFORMATIVE]
  classes = factors[:, INFORMATIVE].astype(np.float64)
  return (classes - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)


def noise(seed=0):
  """Codes independent of the factors: 4 fresh normal units a call."""
  rng = np.random.default_rng(seed)
  return lambda factors: rng.standard_normal((len(factors), 4))


def scores(codes_of, factor_sizes=FACTOR_SIZES):
  return (
    disentanglement.mig(codes_of, factor_sizes, **MIG_POINTS),
    disentanglement.factor_vae_score(codes_of, factor_sizes, **VOTES),
    disentanglement.dci(codes_of, factor_sizes, **DCI_POINTS),
  )


def test_the_factors_themselves_score_the_maximum():
  mig, factor_vae, dci = scores(standardized)
  # Not 1: independent factors share a little plug-in information on 2,000
  # points (test_mig_matches_plug_in_entropies has the exact value).
  assert mig["mig"] > 0.99
  assert factor_vae["train_accuracy"] == factor_vae["eval_accuracy"] == 1.0
  assert factor_vae["num_active_dims"] == 4
  assert dci["disentanglement"] > 0.999
  assert dci["completeness"] > 0.999
  assert dci["informativeness_train"] == dci["informativeness_test"] == 1.0


def test_noise_scores_zero_and_chance():
  mig, factor_vae, dci = scores(noise())
  assert mig["mig"] < 0.02
  assert abs(factor_vae["eval_accuracy"] - CHANCE) < 0.04
  assert dci["disentanglement"] < 0.05
  # Boosted trees memorize noise but predict held-out factors at chance.
  assert dci["informativeness_test"] < CHANCE + 0.1


def test_mig_matches_plug_in_entropies():
  """Code = the factors' raw classes. Of at most 20 values, a unit's bins
  are its factor's values; 40 values fill 20 bins two by two, so that unit
  reads f // 2. A unit u is a function of f or independent of it: the
  plug-in I(f; u) = H(f) + H(u) - H(f, u) is H(u) for its own factor's unit,
  and a little above 0 for the others, on finitely many points."""
  factor_sizes = (1, 3, 40, 5)
  seen = []

  def raw_classes(factors):
    seen.append(factors)
    return factors.astype(np.float64)

  mig = disentanglement.mig(raw_classes, factor_sizes, **MIG_POINTS)
  (factors,) = seen

  def entropy(*columns):
    _, counts = np.unique(np.stack(columns), axis=1, return_counts=True)
    return stats.entropy(counts)

  def unit(g):
    return factors[:, g] // 2 if g == 2 else factors[:, g]

  def information(f, g):
    return (
      entropy(factors[:, f])
      + entropy(unit(g))
      - entropy(factors[:, f], unit(g))
    )

  gaps = []
  for f in (1, 2, 3):
    others = [information(f, g) for g in (1, 2, 3) if g != f]
    gaps.append((entropy(unit(f)) - max(others)) / entropy(factors[:, f]))
    assert mig[f"mig_factor_{f}"] == pytest.approx(gaps[-1], abs=1e-12)
  assert mig["mig"] == pytest.approx(np.mean(gaps), abs=1e-12)
  assert "mig_factor_0" not in mig  # One value: no information to score.
  # About log 20 / log 40, however perfect the code.
  assert mig["mig_factor_2"] == pytest.approx(np.log(20) / np.log(40), abs=0.02)


def test_mutual_information_is_migs_plug_in_matrix():
  """Each unit one factor's raw class, plus a copy of factor 3's and a unit
  of noise: the matrix holds the plug-in I(f; binned unit) and H(f) that
  MIG divides, with zeros for the factor of one value."""
  factor_sizes = (1, 3, 6, 5)
  seen = []

  def units(factors):
    seen.append(factors)
    noise = np.random.default_rng(1).standard_normal(len(factors))
    return np.column_stack([factors[:, 1:], factors[:, 3], noise])

  information, entropy = disentanglement.mutual_information(
    units, factor_sizes, **MIG_POINTS
  )
  (factors,) = seen
  binned = disentanglement.discretize(units(factors))

  def plug_in_entropy(*columns):
    _, counts = np.unique(np.stack(columns), axis=1, return_counts=True)
    return stats.entropy(counts)

  assert information.shape == (5, 4) and entropy.shape == (4,)
  assert not information[:, 0].any() and entropy[0] == 0.0
  for f in (1, 2, 3):
    assert entropy[f] == pytest.approx(plug_in_entropy(factors[:, f]))
    for d in range(5):
      expected = (
        plug_in_entropy(factors[:, f])
        + plug_in_entropy(binned[:, d])
        - plug_in_entropy(factors[:, f], binned[:, d])
      )
      assert information[d, f] == pytest.approx(expected, abs=1e-12)
  # A unit that is its factor holds all of its entropy; noise only the
  # plug-in bias, about (20 bins - 1)(classes - 1) / 2N: 0.024 for 6 classes.
  np.testing.assert_allclose(np.diag(information[:3, 1:]), entropy[1:])
  assert information[4, 1:].max() < 0.04
  # Two units of factor 3: MIG's gap is 0 there, as the matrix says.
  mig = disentanglement.mig(units, factor_sizes, **MIG_POINTS)
  assert mig["mig_factor_3"] == 0.0
  assert mig["mig_factor_1"] == pytest.approx(
    (information[0, 1] - np.sort(information[:, 1])[-2]) / entropy[1]
  )


def test_a_copied_factor_lowers_mig_only():
  def copied(factors):
    codes = standardized(factors)
    return np.concatenate([codes[:, :1], codes], axis=1)

  mig = disentanglement.mig(copied, FACTOR_SIZES, **MIG_POINTS)
  # Two identical units inform alike: no gap at all.
  assert mig["mig_factor_1"] == 0.0
  assert min(mig[f"mig_factor_{f}"] for f in (2, 3, 4)) > 0.99
  assert mig["mig"] == pytest.approx(0.75, abs=0.01)
  factor_vae = disentanglement.factor_vae_score(copied, FACTOR_SIZES, **VOTES)
  assert factor_vae["eval_accuracy"] == 1.0


def test_rotations_lower_all_three():
  rotation = stats.ortho_group.rvs(4, random_state=0)
  mig, factor_vae, dci = scores(lambda f: standardized(f) @ rotation.T)
  assert mig["mig"] < 0.5
  assert factor_vae["eval_accuracy"] < 0.9
  assert dci["disentanglement"] < 0.5
  # The information is all still there, only mixed.
  assert dci["informativeness_train"] == 1.0
  # Every factor spread over every unit alike: no unit singles one out.
  mig, factor_vae, dci = scores(lambda f: standardized(f) @ HADAMARD.T)
  assert mig["mig"] < 0.05
  assert abs(factor_vae["eval_accuracy"] - CHANCE) < 0.04
  assert dci["disentanglement"] < 0.05


def test_dci_of_importance_matrices():
  eye = np.eye(4)
  assert disentanglement.dci_disentanglement(eye) == pytest.approx(1.0)
  assert disentanglement.dci_completeness(eye[::-1]) == pytest.approx(1.0)
  assert disentanglement.dci_disentanglement(np.ones((4, 4))) == pytest.approx(
    0.0, abs=1e-12
  )
  # Unit 0 serves factors 0 and 1 alike: 1 - log 2 / log 4 = 1/2, with half
  # of all importance; units 1 and 2 serve one factor each (a quarter each).
  # Every factor is served by one unit only: complete.
  split = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
  assert disentanglement.dci_disentanglement(split) == pytest.approx(0.75)
  assert disentanglement.dci_completeness(split) == pytest.approx(1.0)
  # Nothing important: zero, not 0/0.
  assert disentanglement.dci_disentanglement(np.zeros((3, 2))) == pytest.approx(
    0.0, abs=1e-9
  )


def test_factor_vae_is_blind_to_unit_scales():
  """Variances relative to each unit's own: rescaling units changes no vote,
  though a unit of scale 0.1 varies less, fixed or not, than a fixed unit of
  scale 1 does through its noise."""

  def noisy(scales):
    jitter = noise()
    return lambda f: scales * (standardized(f) + 0.3 * jitter(f))

  plain = disentanglement.factor_vae_score(noisy(1.0), FACTOR_SIZES, **VOTES)
  scaled = disentanglement.factor_vae_score(
    noisy(np.array([1.0, 0.1, 10.0, 0.3])), FACTOR_SIZES, **VOTES
  )
  assert scaled == plain
  assert plain["eval_accuracy"] == 1.0


def test_factor_vae_prunes_by_standard_deviation():
  def with_quiet_units(factors):
    quiet = np.random.default_rng(0).standard_normal((len(factors), 2))
    # A constant unit (0/0 relative variance) and one of std 0.01 are
    # collapsed; one of std 0.1 (variance 0.01, below 0.05) is not.
    return np.concatenate(
      [standardized(factors), 0 * quiet[:, :1], 0.01 * quiet, 0.1 * quiet],
      axis=1,
    )

  factor_vae = disentanglement.factor_vae_score(
    with_quiet_units, FACTOR_SIZES, **VOTES
  )
  assert factor_vae["num_active_dims"] == 6
  assert factor_vae["eval_accuracy"] == 1.0
  collapsed = disentanglement.factor_vae_score(
    lambda f: np.zeros((len(f), 3)), FACTOR_SIZES, **VOTES
  )
  assert collapsed == {
    "train_accuracy": 0.0,
    "eval_accuracy": 0.0,
    "num_active_dims": 0,
  }


def test_discretize_into_equal_width_bins():
  codes = np.stack(
    [np.arange(40.0), np.full(40, 3.0), np.linspace(-1, 1, 40)], axis=1
  )
  binned = disentanglement.discretize(codes)
  np.testing.assert_array_equal(binned[:, 0], np.arange(40) // 2 + 1)
  assert len(np.unique(binned[:, 1])) == 1
  assert binned[:, 2].min() == 1 and binned[:, 2].max() == 20


def test_seeds_and_one_line_errors():
  first = disentanglement.mig(noise(), FACTOR_SIZES, **MIG_POINTS, seed=3)
  assert first == disentanglement.mig(
    noise(), FACTOR_SIZES, **MIG_POINTS, seed=3
  )
  assert first != disentanglement.mig(
    noise(), FACTOR_SIZES, **MIG_POINTS, seed=4
  )
  with pytest.raises(ValueError, match="at least 2 factors"):
    disentanglement.mig(standardized, (1, 5, 1))
  with pytest.raises(ValueError, match="D >= 2"):
    disentanglement.dci(lambda f: f[:, 1], FACTOR_SIZES, **DCI_POINTS)
