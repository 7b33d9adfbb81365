r"""Figures and numbers that describe one trained run, in WORKDIR/analysis/.

    python -m vae_jax.analyze --workdir=/tmp/vae_mnist --iwae_k=5000

What it writes is `vae_jax.analysis.report.analyze`'s (GANs:
`gan_report.analyze`); this file only reads flags.
"""

import os

from absl import app
from absl import flags

from vae_jax import cli
from vae_jax import errors
from vae_jax.analysis import frechet_curve
from vae_jax.analysis import report

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory of a trained run.")
flags.DEFINE_integer("step", None, "Checkpoint step; the newest if unset.")
flags.DEFINE_integer("num", 10, "Test images in reconstructions.png.")
flags.DEFINE_string(
  "dims",
  None,
  "Latent dims 'i,j' varied in "
  "traversal.png; default: the two with the largest KL.",
)
flags.DEFINE_string(
  "traversal_center",
  "zero",
  "'zero', or the index of the test image whose posterior mean it varies.",
)
flags.DEFINE_string(
  "attribute", None, "celeb_a: the attribute that colors latent_2d.png."
)
flags.DEFINE_integer(
  "iwae_k",
  None,
  "Importance samples per image for the "
  "IWAE estimate of -log p(x); 0 skips it. Default: 5000 "
  "for runs on binarized images, else 0.",
)
flags.DEFINE_integer(
  "iwae_examples",
  None,
  "Test images (the first ones) the IWAE estimate averages; default: all.",
)
flags.DEFINE_integer(
  "num_points",
  2000,
  "Test codes, chosen at random, in "
  "latent_2d.png (t-SNE) and the class-separation scores.",
)
flags.DEFINE_integer(
  "curve_samples",
  2000,
  "MNIST: samples per kept checkpoint in "
  "frechet_over_training.png (the Fréchet distance over training); 0 skips it.",
)
flags.DEFINE_integer("seed", 0, "Seeds sampling, subsampling and t-SNE.")
flags.mark_flag_as_required("workdir")


def _parse_dims(text: str | None) -> tuple[int, ...] | None:
  if text is None:
    return None
  try:
    return tuple(int(part) for part in text.split(","))
  except ValueError:
    raise errors.UserInputError(
      f"--dims must be two integers 'i,j', got {text!r}."
    ) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with cli.reporting_user_errors():
    payload = report.analyze(
      FLAGS.workdir,
      step=FLAGS.step,
      num=FLAGS.num,
      dims=_parse_dims(FLAGS.dims),
      traversal_center=FLAGS.traversal_center,
      attribute=FLAGS.attribute,
      iwae_k=FLAGS.iwae_k,
      iwae_examples=FLAGS.iwae_examples,
      num_points=FLAGS.num_points,
      seed=FLAGS.seed,
      curve_samples=FLAGS.curve_samples,
    )
  if "frechet_over_training" in payload:
    print(frechet_curve.summary(payload["frechet_over_training"]))
  print(
    f"Wrote {os.path.join(FLAGS.workdir, 'analysis')} in "
    f"{payload['seconds']['total']:.0f} s."
  )


if __name__ == "__main__":
  app.run(main)
