r"""Samples of a trained VAE or GAN, saved as uint8 images in an .npz file.

    python -m vae_jax.sample --workdir=/tmp/vae_mnist --num_samples=1000 \
        --output=/tmp/samples.npz
    python -m vae_jax.sample --workdir=/tmp/acgan_mnist --num_samples=100 \
        --label=7 --output=/tmp/sevens.npz

What the file holds is `vae_jax.analysis.sampling`'s; this file only reads
flags.
"""

from absl import app
from absl import flags

from vae_jax import cli
from vae_jax.analysis import sampling
from vae_jax.core import outputs

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory of a trained run.")
flags.DEFINE_integer("num_samples", None, "Number of images.")
flags.DEFINE_string(
  "output", None, "The .npz file to write; its folder is created if needed."
)
flags.DEFINE_integer("label", None, "Class to sample (conditional models).")
flags.DEFINE_integer("seed", 0, "Seeds z.")
flags.DEFINE_integer("step", None, "Checkpoint step; the newest if unset.")
flags.mark_flags_as_required(["workdir", "num_samples", "output"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with cli.reporting_user_errors():
    outputs.check_output_path(FLAGS.output, ".npz")  # Before the slow part.
    images = sampling.sample(
      FLAGS.workdir,
      FLAGS.num_samples,
      step=FLAGS.step,
      label=FLAGS.label,
      seed=FLAGS.seed,
    )
    sampling.write_samples(FLAGS.output, images)
  print(f"{FLAGS.output}: images {images.dtype} {list(images.shape)}")


if __name__ == "__main__":
  app.run(main)
