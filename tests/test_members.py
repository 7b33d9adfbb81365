"""Vectorized groups (`trainers.members`): runs that differ only in numbers,
trained as one program vmapped over a member axis, each equal to its run
alone."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from test_exact_resume import sigterm_after
import testbed
from vae_jax import errors
from vae_jax.core import preemption
from vae_jax.data import batching
from vae_jax.data import device_held
from vae_jax.data import pipeline
from vae_jax.sweeps import runner
from vae_jax.trainers import loop
from vae_jax.trainers import members as members_lib
from vae_jax.trainers import single_network

MOCK_EXAMPLES = 40  # 5 steps of 8 per epoch.
# The second member differs from the first in a traced field of each kind:
# the loop's (seed), the objective's (loss.*) and the trainer's (optimizer).
MEMBER_OVERRIDES = (
  {},
  {
    "seed": 7,
    "loss.kl_weight": 0.25,
    "loss.kl_warmup_steps": 4,
    "optimizer.learning_rate": 3e-3,
  },
)
# Vmapped matmuls and sums add in another order than the run alone's: the
# members agree with their runs alone to float32 rounding, not bit for bit.
RTOL, ATOL = 2e-5, 1e-6


def member_configs(extra=None):
  return [
    testbed.make_tiny_config({**overrides, **(extra or {})})
    for overrides in MEMBER_OVERRIDES
  ]


def group_of(configs, tmp_path, prefix="member"):
  return members_lib.Members.group(
    configs, [str(tmp_path / f"{prefix}{i}") for i in range(len(configs))]
  )


def random_batches(count, size=8):
  rng = np.random.default_rng(0)
  return {
    "image": rng.uniform(size=(count, size, 28, 28, 1)).astype(np.float32),
    "label": rng.integers(0, 10, (count, size)).astype(np.int32),
  }


def assert_trees_close(actual, expected):
  expected_leaves = jax.tree_util.tree_flatten_with_path(expected)[0]
  actual_leaves = jax.tree.leaves(actual)
  assert len(actual_leaves) == len(expected_leaves)
  for value, (path, expected_value) in zip(actual_leaves, expected_leaves):
    np.testing.assert_allclose(
      value,
      expected_value,
      rtol=RTOL,
      atol=ATOL,
      err_msg=jax.tree_util.keystr(path),
    )


def vectorized_step_and_states(configs, tmp_path, total_steps=100):
  parts = testbed.assemble(configs[0])
  group = group_of(configs, tmp_path).checked(parts)
  states = [
    testbed.initial_state(config, parts, (28, 28, 1), total_steps)
    for config in configs
  ]
  train_step, _ = group.steps(parts, lambda step, seed: step, total_steps)
  return parts, group, states, jax.jit(train_step)


def test_a_vectorized_step_equals_each_members_own_step(tmp_path):
  configs = member_configs()
  parts, group, states, step = vectorized_step_and_states(configs, tmp_path)
  batches = random_batches(len(configs))
  rngs = jnp.stack([jax.random.PRNGKey(i) for i in range(len(configs))])
  state = group.stack(states)
  for _ in range(3):  # Adam's moments, and the warm-up, move.
    state, metrics = step(state, batches, rngs)
  for i, config in enumerate(configs):
    alone = jax.jit(single_network.make_steps(config, parts)[0])
    expected = states[i]
    for _ in range(3):
      expected, expected_metrics = alone(
        expected, group.take(batches, i), rngs[i]
      )
    assert_trees_close(group.take(state.params, i), expected.params)
    assert_trees_close(group.take(state.opt_state, i), expected.opt_state)
    assert int(group.take(state.step, i)) == 3
    for name, value in expected_metrics.items():
      np.testing.assert_allclose(
        group.take(metrics, i)[name], value, rtol=RTOL, atol=ATOL
      )
  # Each member's own numbers made a difference: the two moved apart.
  first_kernels = [
    np.asarray(jax.tree.leaves(group.take(state.params, i))[0])
    for i in range(len(configs))
  ]
  assert not np.allclose(first_kernels[0], first_kernels[1])


def test_a_member_whose_step_is_not_finite_is_skipped_alone(tmp_path):
  configs = member_configs()
  _, group, states, step = vectorized_step_and_states(configs, tmp_path)
  batches = random_batches(len(configs))
  batches["image"][1, 0, 0, 0, 0] = np.nan  # Member 1's batch only.
  rngs = jnp.stack([jax.random.PRNGKey(0)] * len(configs))
  before = group.stack(states)
  after, metrics = step(before, batches, rngs)
  assert np.asarray(metrics["finite"]).tolist() == [True, False]
  for i in range(len(configs)):
    unchanged = [
      np.array_equal(a, b)
      for a, b in zip(
        jax.tree.leaves(group.take(after.params, i)),
        jax.tree.leaves(group.take(before.params, i)),
      )
    ]
    assert all(unchanged) == (i == 1), i
  # Its batch is used up all the same: every member is at step 1.
  assert np.asarray(after.step).tolist() == [1, 1]


def test_each_member_gathers_its_own_seeds_batches():
  config = testbed.make_tiny_config()
  seeds = [0, 7, 0]
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    data = pipeline.prepare(config.input)
    split = data.device_split()
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))

  def record_labels(state, batch, rng):
    del rng
    return state, {"label": batch["label"]}

  runner_ = device_held.DeviceSteps(
    split,
    record_labels,
    mesh,
    config.batch_size,
    seeds,
    jax.random.PRNGKey(0),
    max_steps=5,
    leading_axes=1,
  )
  state = {"step": jnp.zeros((3,), jnp.int32)}
  labels = []
  for epoch in range(2):
    state, (metrics, count) = runner_(state, 5 * epoch, 5 * epoch + 5)
    labels.append(np.asarray(metrics["label"])[:count])
  for epoch, epoch_labels in enumerate(labels):
    for member, seed in enumerate(seeds):
      indices = batching.epoch_batch_indices(
        seed, epoch, len(split["label"]), config.batch_size
      )
      np.testing.assert_array_equal(
        epoch_labels[:, member], split["label"][indices]
      )
  assert not np.array_equal(labels[0][:, 0], labels[0][:, 1])


def run_alone(config, workdir):
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    return loop.train_and_evaluate(config, str(workdir))


def run_group(group):
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
    return loop.train_group(group)


# {case: config fields}: batches held on the devices, and batches from the
# host, augmented and dynamically binarized per member.
WHOLE_RUN_CASES = {
  "on_device": {},
  "on_host_augmented_binarized": {
    "input.binarize": "dynamic",
    "input.rotation_degrees": 15.0,
  },
}


@pytest.mark.parametrize("case", WHOLE_RUN_CASES)
def test_members_trained_together_equal_their_runs_alone(case, tmp_path):
  configs = member_configs(WHOLE_RUN_CASES[case])
  group = group_of(configs, tmp_path)
  outcomes = run_group(group)
  assert [o.error for o in outcomes] == [None] * len(configs)
  for i, config in enumerate(configs):
    alone = run_alone(config, tmp_path / f"alone{i}")
    results = outcomes[i].results
    assert results["batches_on_device"] == (case == "on_device")
    assert results["trained_together"] == len(configs)
    written = json.loads((tmp_path / f"member{i}" / "results.json").read_text())
    assert written == results
    for name, value in alone.items():
      if name.startswith("test_"):
        np.testing.assert_allclose(
          results[name], value, rtol=RTOL, err_msg=name
        )
    arrays = testbed.checkpoint_arrays(tmp_path / f"member{i}", 10)
    expected = testbed.checkpoint_arrays(tmp_path / f"alone{i}", 10)
    assert arrays.keys() == expected.keys()
    for name, value in expected.items():
      np.testing.assert_allclose(
        arrays[name], value, rtol=RTOL, atol=ATOL, err_msg=name
      )
    saved = json.loads((tmp_path / f"member{i}" / "config.json").read_text())
    assert saved["seed"] == config.seed
    assert saved["loss"]["kl_weight"] == config.loss.kl_weight


def test_sigterm_then_rerun_of_a_group_equals_the_uninterrupted_group(
  tmp_path,
):
  configs = member_configs()
  reference = run_group(group_of(configs, tmp_path, "reference"))
  with (
    sigterm_after(3),
    pytest.raises(preemption.Preempted, match="by SIGTERM after step 4;"),
  ):
    run_group(group_of(configs, tmp_path, "resumed"))
  resumed = run_group(group_of(configs, tmp_path, "resumed"))
  for i in range(len(configs)):
    assert resumed[i].results["start_step"] == 4
    for name, value in reference[i].results.items():
      if name.startswith("test_"):
        assert resumed[i].results[name] == value, name
    arrays = testbed.checkpoint_arrays(tmp_path / f"resumed{i}", 10)
    for name, value in testbed.checkpoint_arrays(
      tmp_path / f"reference{i}", 10
    ).items():
      np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def test_a_diverging_member_stops_alone(tmp_path):
  configs = member_configs({"max_consecutive_nonfinite": 2})
  configs[1].optimizer.learning_rate = 1e30  # Its weights overflow at once.
  outcomes = run_group(group_of(configs, tmp_path))
  assert outcomes[1].results is None
  assert "non-finite loss or gradient" in outcomes[1].error
  assert "max_consecutive_nonfinite=2" in outcomes[1].error
  assert not (tmp_path / "member1" / "results.json").exists()
  assert outcomes[0].error is None
  assert outcomes[0].results["steps"] == 10
  assert np.isfinite(outcomes[0].results["test_loss"])


def test_members_differing_in_a_shape_are_refused(tmp_path):
  configs = member_configs()
  configs[1].model.latent_size = 3
  with pytest.raises(errors.ConfigError, match="model.latent_size"):
    run_group(group_of(configs, tmp_path))


def test_a_sweep_grid_is_split_into_groups_by_shape(tiny_config, tmp_path):
  runs = runner.make_runs(
    tiny_config, ["model.latent_size=2,3", "loss.kl_weight=1,0.5", "seed=0,1"]
  )
  configs = [runner.run_config(tiny_config, run.overrides) for run in runs]
  run_dirs = [str(tmp_path / run.name) for run in runs]
  groups = runner.training_groups(configs, run_dirs, ["new"] * 8, True)
  # The first field varies slowest: one group per latent size.
  assert groups == [[0, 1, 2, 3], [4, 5, 6, 7]]
  assert runner.training_groups(
    configs, run_dirs, ["done"] + ["new"] * 7, False
  ) == [[i] for i in range(1, 8)]
  # --max_members splits each group in grid order.
  assert runner.training_groups(
    configs, run_dirs, ["new"] * 8, True, max_members=3
  ) == [[0, 1, 2], [3], [4, 5, 6], [7]]


def test_a_group_too_large_for_the_devices_is_refused_naming_what_fits(
  tmp_path, monkeypatch
):
  configs = member_configs()
  # XLA's count for the two members' loop, which the refusal reports.
  needed = []
  check_memory = members_lib.Members.check_memory

  def with_too_little_memory(self, lower, available=None):
    del available
    stats = lower().compile().memory_analysis()
    needed.append(
      stats.argument_size_in_bytes
      + stats.output_size_in_bytes
      - stats.alias_size_in_bytes
      + stats.temp_size_in_bytes
    )
    # Room for one member and a half.
    check_memory(self, lower, available=int(needed[0] * 0.75))

  monkeypatch.setattr(
    members_lib.Members, "check_memory", with_too_little_memory
  )
  with pytest.raises(errors.UserInputError) as e:
    run_group(group_of(configs, tmp_path))
  assert str(e.value) == (
    f"2 members trained together need {needed[0] / 2**20:,.1f} MiB on each "
    f"device, more than the {int(needed[0] * 0.75) / 2**20:,.1f} MiB free "
    "there; train at most 1 together (--max_members=1)."
  )
  # Refused before any step: nothing was trained or saved.
  assert not (tmp_path / "member0" / "checkpoints").exists() or not any(
    (tmp_path / "member0" / "checkpoints").iterdir()
  )
