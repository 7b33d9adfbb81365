r"""Each conv form of vae_jax.models.layers against PyTorch, layer by layer.

    python benchmarks/conv_forms.py \
        --output=benchmarks/results/conv_forms_cpu_2cores.json

For every conv layer shape of the conv configs (batch 128), times one
forward and backward pass (gradients of the kernel, and of the input unless
it is the image) of the 'xla' and 'matmul' forms and of PyTorch's
Conv2d / ConvTranspose2d, interleaved, and prints the medians (one lone
step each: inside training's compiled loop XLA's strided convs are much
slower, see `layers.resolve_conv_impl`). Needs `pip install -e '.[bench]'`
(PyTorch's CPU build). Not a test: timings depend on the machine.
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import torch

from vae_jax.models import layers

flags.DEFINE_integer("batch_size", 128, "Images per batch.")
flags.DEFINE_integer("repeats", 7, "Interleaved timed rounds; medians.")
flags.DEFINE_string("output", None, "Optional JSON file for the figures.")
FLAGS = flags.FLAGS

# (transposed, input size, in channels, out channels, kernel size).
SHAPES = sorted(
  {
    # mnist_conv encoder and decoder.
    (False, 32, 1, 64, 4),
    (False, 16, 64, 128, 4),
    (False, 8, 128, 256, 4),
    (False, 4, 256, 128, 4),
    (True, 2, 128, 256, 4),
    (True, 4, 256, 128, 4),
    (True, 8, 128, 64, 4),
    (True, 16, 64, 1, 4),
    # mnist_convvae.
    (False, 32, 1, 32, 3),
    (False, 16, 32, 64, 3),
    (False, 8, 64, 128, 3),
    (True, 4, 128, 64, 3),
    (True, 8, 64, 32, 3),
    (True, 16, 32, 1, 3),
    # dogs_conv, dogs_ae:conv, celeba_gan.
    (False, 64, 3, 64, 4),
    (False, 32, 64, 128, 4),
    (False, 16, 128, 256, 4),
    (False, 8, 256, 128, 4),
    (False, 8, 256, 512, 4),
    (True, 4, 128, 256, 4),
    (True, 4, 512, 256, 4),
    (True, 8, 256, 128, 4),
    (True, 16, 128, 64, 4),
    (True, 32, 64, 3, 4),
  }
)


def jax_step(transposed: bool, impl: str, input_grad: bool):
  """Jitted gradients of <layer(x), g> for one form."""
  layer = layers.UpConv if transposed else layers.StridedConv

  def loss(kernel, x, g):
    features = kernel.shape[-1]
    module = layer(
      features, kernel_size=kernel.shape[0], use_bias=False, conv_impl=impl
    )
    return jnp.sum(module.apply({"params": {"kernel": kernel}}, x) * g)

  return jax.jit(jax.grad(loss, argnums=(0, 1) if input_grad else 0))


def torch_step(
  transposed: bool, in_channels: int, out_channels: int, size: int
):
  if transposed:
    output_padding = size % 2  # k=3 doubles with output_padding 1.
    module = torch.nn.ConvTranspose2d(
      in_channels, out_channels, size, 2, 1, output_padding, bias=False
    )
  else:
    module = torch.nn.Conv2d(in_channels, out_channels, size, 2, 1, bias=False)
  return module


def main(argv):
  del argv
  torch.manual_seed(0)
  results = []
  for transposed, height, cin, cout, size in SHAPES:
    batch = FLAGS.batch_size
    out_height = 2 * height if transposed else height // 2
    input_grad = transposed or cin > 3
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, height, height, cin))
    g = jax.random.normal(
      jax.random.PRNGKey(1), (batch, out_height, out_height, cout)
    )
    kernel = (
      jax.random.normal(jax.random.PRNGKey(2), (size, size, cin, cout)) * 0.05
    )
    steps = {
      impl: jax_step(transposed, impl, input_grad) for impl in ("xla", "matmul")
    }
    module = torch_step(transposed, cin, cout, size)
    tx = torch.randn(batch, cin, height, height, requires_grad=input_grad)
    tg = torch.randn(batch, cout, out_height, out_height)

    def run_torch(module=module, tx=tx, tg=tg):
      module.zero_grad(set_to_none=True)
      (module(tx) * tg).sum().backward()

    runs = {
      impl: (
        lambda step=step, kernel=kernel, x=x, g=g: jax.block_until_ready(
          step(kernel, x, g)
        )
      )
      for impl, step in steps.items()
    }
    runs["pytorch"] = run_torch
    for run in runs.values():
      run()
    times = {name: [] for name in runs}
    for _ in range(FLAGS.repeats):
      for name, run in runs.items():
        start = time.perf_counter()
        run()
        times[name].append(time.perf_counter() - start)
    ms = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    kind = "UpConv" if transposed else "StridedConv"
    results.append(
      {
        "layer": kind,
        "input": [height, height, cin],
        "out_channels": cout,
        "kernel_size": size,
        "ms": ms,
      }
    )
    print(
      f"| {kind} k{size} {height}x{height}x{cin} -> {cout} | "
      f"{ms['xla']:.1f} | {ms['matmul']:.1f} | {ms['pytorch']:.1f} |",
      flush=True,
    )
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(
        {"batch_size": FLAGS.batch_size, "layers": results}, f, indent=2
      )


if __name__ == "__main__":
  app.run(main)
