r"""A finished, analyzed run as a pretrained model folder with a model card.

    python -m vae_jax.export --workdir=/tmp/zoo/mnist_cvae \
        --output=pretrained/mnist_cvae --command="python -m vae_jax.main ..."

The folder holds the run's config.json, its weights without optimizer
states, the first test images and card.json and README.md (the card); any
command that reads a run's --workdir reads it. What it writes is
`vae_jax.analysis.pretrained.export`'s; this file only reads flags.
"""

from absl import app
from absl import flags

from vae_jax import cli
from vae_jax.analysis import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory of a trained, analyzed run.")
flags.DEFINE_string("output", None, "The folder to write.")
flags.DEFINE_string(
  "command", None, "The command that trained and analyzed the run."
)
flags.DEFINE_string(
  "commit",
  None,
  "The commit that trained the run, if its results.json does not say.",
)
flags.DEFINE_string(
  "hardware",
  None,
  "What the run trained on, if its results.json does not say.",
)
flags.mark_flags_as_required(["workdir", "output", "command"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with cli.reporting_user_errors():
    card = pretrained.export(
      FLAGS.workdir,
      FLAGS.output,
      command=FLAGS.command,
      commit=FLAGS.commit,
      hardware=FLAGS.hardware,
    )
  print(
    f"Wrote {FLAGS.output}: weights {card['weights_bytes']:,} bytes; check "
    f"NLL {card['check']['nll']}, -ELBO {card['check']['nelbo']}."
  )


if __name__ == "__main__":
  app.run(main)
