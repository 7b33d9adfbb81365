r"""Trains and evaluates a model from a config file.

    python -m vae_jax.main --config=configs/mnist_linear.py --workdir=/tmp/vae

Any config field can be overridden, e.g. `--config.num_epochs=5`. The work is
`vae_jax.trainers.loop.train_and_evaluate`, which tests, notebooks and
launch scripts call directly; this file only reads flags.
"""

from absl import app
from absl import flags

from vae_jax import cli
from vae_jax.core import outputs
from vae_jax.trainers import loop
from vae_jax.trainers import run_config

FLAGS = flags.FLAGS
cli.define_run_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.prepare_process()
  # Checked before the config's line (train_and_evaluate checks again), so
  # that a mistake prints its error alone.
  cli.run_reporting_errors(run_config.check_config, FLAGS.config)
  cli.run_reporting_errors(outputs.check_workdir, FLAGS.workdir)
  cli.log_config(FLAGS.workdir)
  cli.run_reporting_errors(loop.train_and_evaluate, FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
