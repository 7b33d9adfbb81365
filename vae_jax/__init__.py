"""vae_jax: variational autoencoders and their relatives in JAX/Flax."""

__version__ = "0.1.0"
