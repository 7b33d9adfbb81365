"""Installs vae_jax: `pip install -e .` (library), `pip install -e '.[test]'`
(tests), `pip install -e '.[notebooks]'` (colabs/ in a local Jupyter),
`pip install -e '.[bench]'` (benchmarks/ against PyTorch) or
`pip install -e '.[lint]'` (ruff, the formatter and linter)."""

import setuptools

INSTALL_REQUIRES = [
  "absl-py>=2.1",
  "clu>=0.0.12",
  "etils[epath]>=1.7",
  "flax>=0.10.4",
  # tensorflow_datasets.dataset_builders imports it without declaring it.
  "importlib_resources>=6.0",
  "jax>=0.5.3",
  "matplotlib>=3.8",  # Figures of vae_jax.analyze and vae_jax.sweep.
  "ml_collections>=1.0",
  "numpy>=1.26",
  "optax>=0.2.4",
  "orbax-checkpoint>=0.11.5",
  # t-SNE, the latent-space class metrics, the disentanglement metrics.
  "scikit-learn>=1.4",
  "joblib>=1.2",  # DCI's classifiers fitted in parallel.
  "tensorboard>=2.16",
  # TensorFlow is only used for tf.data and TensorBoard summaries, so the
  # CPU build is enough (and avoids pulling CUDA libraries next to JAX's).
  "tensorflow-cpu>=2.16; sys_platform != 'darwin'",
  "tensorflow>=2.16; sys_platform == 'darwin'",
  "tensorflow-datasets>=4.9.6",
]

# What the notebooks in colabs/ need beside the library (Colab has both).
# Not in INSTALL_REQUIRES: they bring IPython and Jupyter's widget packages,
# which training jobs never use; vae_jax.analysis.explore imports ipywidgets
# lazily.
NOTEBOOK_REQUIRES = [
  "ipykernel>=6.0",
  "ipywidgets>=8.0",
]

# The formatter and linter (ruff.toml); .ci/run checks with this version
# before the tests, and a different version may format differently.
LINT_REQUIRES = [
  "ruff==0.17.5",
]

TEST_REQUIRES = [
  "papermill>=2.6",  # Runs each notebook with its parameters overridden.
  "pytest>=8.0",
  "pytest-xdist>=3.5",
  *NOTEBOOK_REQUIRES,
  *LINT_REQUIRES,
]

# benchmarks/vs_pytorch.py and conv_forms.py time PyTorch twins of the
# models; never a dependency of the library. The CPU build: pip may pick a
# CUDA one unless PyTorch's CPU index is given
# (--extra-index-url https://download.pytorch.org/whl/cpu).
BENCH_REQUIRES = [
  "torch==2.13.0",
]

setuptools.setup(
  name="vae_jax",
  version="0.1.0",
  description="Variational autoencoders and their relatives in JAX/Flax.",
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  license="Apache-2.0",
  packages=setuptools.find_packages(include=["vae_jax", "vae_jax.*"]),
  python_requires=">=3.11",
  install_requires=INSTALL_REQUIRES,
  extras_require={
    "bench": BENCH_REQUIRES,
    "lint": LINT_REQUIRES,
    "notebooks": NOTEBOOK_REQUIRES,
    "test": TEST_REQUIRES,
  },
  classifiers=[
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
  ],
)
