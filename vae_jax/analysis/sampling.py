r"""Samples of a trained VAE or GAN, saved as uint8 images in an .npz file.

The library of the command

    python -m vae_jax.sample --workdir=/tmp/vae_mnist --num_samples=1000 \
        --output=/tmp/samples.npz
    python -m vae_jax.sample --workdir=/tmp/acgan_mnist --num_samples=100 \
        --label=7 --output=/tmp/sevens.npz

The file holds `images`, uint8 [N, H, W, C]: decoded means of z ~ N(0, I),
a GAN generator's images of z, or a code prior's grids decoded by the
VQ-VAE run it models, the same for the same --seed. An ACGAN
generates class --label (MNIST's digit; CelebA attributes as bits, the first
lowest), or every class in turn. Plain autoencoders have no prior to sample.
"""

import jax
import numpy as np

from vae_jax import errors
from vae_jax.analysis import gan_report
from vae_jax.analysis import runs
from vae_jax.core import image_grid
from vae_jax.core import outputs
from vae_jax.trainers import code_grids


def sample_images(
  run: runs.TrainedRun,
  num_samples: int,
  *,
  label: int | None = None,
  seed: int = 0,
) -> np.ndarray:
  """uint8 [num_samples, H, W, C] samples of a loaded run."""
  if run.adversarial:
    return gan_report.sample(
      run, *gan_report.random_inputs(run, num_samples, seed, label)
    )
  if run.code_prior:
    runs.sample_classes(run, num_samples, label)  # Refuses a --label.
    grids = runs.sample_code_grids(run, jax.random.PRNGKey(seed), num_samples)
    return image_grid.to_uint8(
      code_grids.decode_grids(run.data.quantizer_run, grids)
    )
  if not run.variational:
    raise errors.UserInputError(
      f"{run.workdir!r} holds {run.config.model.name} (a model of kind "
      f"{run.parts.family.kind.value!r}): it has no prior to sample from."
    )
  z = runs.prior_samples(run, jax.random.PRNGKey(seed), num_samples)
  return runs.decode(run, z, runs.sample_classes(run, num_samples, label))


def sample(
  workdir: str,
  num_samples: int,
  *,
  step: int | None = None,
  label: int | None = None,
  seed: int = 0,
) -> np.ndarray:
  """uint8 [num_samples, H, W, C] samples of the run in `workdir`."""
  if num_samples < 1:
    raise errors.UserInputError(
      f"--num_samples must be positive, got {num_samples}."
    )
  return sample_images(
    runs.load(workdir, step), num_samples, label=label, seed=seed
  )


def write_samples(path: str, images: np.ndarray) -> None:
  """`images` as the `images` array of the .npz file `path`, atomically."""
  outputs.write_npz(path, {"images": images})
