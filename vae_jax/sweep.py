r"""Trains one config over a grid of field values, then compares the runs.

    python -m vae_jax.sweep --config=configs/mnist_convvae.py:16 \
        --workdir=/tmp/sweep_kl --sweep='loss.kl_weight=5e-1,5e-2,5e-3'

See `vae_jax.sweeps.runner` for the grid, the run directories, resuming and
the summary; this file only reads flags.
"""

from absl import app
from absl import flags

from vae_jax import cli
from vae_jax.sweeps import runner

FLAGS = flags.FLAGS
cli.define_run_flags()
flags.DEFINE_multi_string(
  "sweep",
  None,
  "FIELD=VALUE,VALUE,...: a config field and its values; "
  "several --sweep flags form a grid. FIELD 'config' sweeps the config "
  "file's argument.",
)
flags.DEFINE_bool(
  "vectorize",
  False,
  "Train the runs that differ only in numbers the step reads (the seed, "
  "loss.kl_weight, optimizer.learning_rate, ...) together, as one compiled "
  "program vmapped over them; the others apart.",
)
flags.DEFINE_integer(
  "max_members",
  0,
  "With --vectorize, at most this many runs in one compiled program (0: no "
  "limit); a group too large for the devices' memory names a number.",
  lower_bound=0,
)
flags.DEFINE_bool(
  "dry_run",
  False,
  "List the runs and whether each is done, partial or new; train nothing.",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.sweep:
    raise SystemExit(
      f"{cli.ERROR_PREFIX}give at least one --sweep=FIELD=V1,V2."
    )
  cli.prepare_process()
  cli.run_reporting_errors(
    runner.run_sweep,
    FLAGS.config,
    FLAGS.workdir,
    FLAGS.sweep,
    FLAGS.dry_run,
    FLAGS.vectorize,
    FLAGS.max_members,
    cli.config_with_argument,
  )


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
