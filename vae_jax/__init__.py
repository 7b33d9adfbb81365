"""vae_jax: variational autoencoders and their relatives in JAX/Flax."""

import os

# TensorFlow only feeds data here; its C++ INFO and WARNING lines (CPU
# features, buffer sizes, an op's failed write that the run reports itself
# in one line) say nothing a user can act on. Set before TensorFlow loads; a
# value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow prints its oneDNN notice (twice per process) whatever the log
# level, and nothing without oneDNN's kernels. Those speed up model math
# (matmuls, convolutions); here TensorFlow only reads, decodes and resizes
# images, and the models run in JAX.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
