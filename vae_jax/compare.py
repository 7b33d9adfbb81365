r"""Samples of several trained models side by side, each labelled with its
model, run and step.

    python -m vae_jax.compare --workdirs=/tmp/vae_mnist,/tmp/acgan_mnist \
        --output=/tmp/vae_vs_gan.png

The figure, the table it prints and the figure's .json twin are
`vae_jax.analysis.comparison.compare`'s; this file only reads flags.
"""

from absl import app
from absl import flags

from vae_jax import cli
from vae_jax import errors
from vae_jax.analysis import comparison

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "Directories of trained runs, in order.")
flags.DEFINE_string("output", None, "The .png file to write.")
flags.DEFINE_integer("num_samples", 20, "Samples per model.")
flags.DEFINE_integer("seed", 0, "Seeds z (the same for every model).")
flags.DEFINE_integer(
  "num_metric_samples",
  10_000,
  "Samples of each MNIST run the "
  "project's classifier judges (Fréchet distance, precision, recall, "
  "sharpness, conditioning accuracy); 0 skips them.",
)
flags.DEFINE_list(
  "steps",
  None,
  "Checkpoint step per workdir ('' for the "
  "newest), e.g. ',5000'; the newest of each if unset.",
)
flags.mark_flags_as_required(["workdirs", "output"])


def _parse_steps(texts: list[str] | None) -> list[int | None] | None:
  if texts is None:
    return None
  try:
    return [int(text) if text else None for text in texts]
  except ValueError:
    raise errors.UserInputError(
      f"--steps must be integers or empty, got {','.join(texts)!r}."
    ) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with cli.reporting_user_errors():
    table = comparison.compare(
      FLAGS.workdirs,
      FLAGS.output,
      num_samples=FLAGS.num_samples,
      seed=FLAGS.seed,
      steps=_parse_steps(FLAGS.steps),
      num_metric_samples=FLAGS.num_metric_samples,
    )
  if table:
    print(table)
  print(FLAGS.output)


if __name__ == "__main__":
  app.run(main)
