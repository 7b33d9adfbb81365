"""vae_jax: variational autoencoders and their relatives in JAX/Flax."""

import os

# TensorFlow only feeds data here; its C++ INFO lines (oneDNN, CPU features,
# buffer sizes) say nothing a user can act on. Set before TensorFlow loads;
# a value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.1.0"
