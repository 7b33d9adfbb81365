"""The documentation against the repository: links, commands, tables, tests.

Commands are read from fenced code blocks only: a command is the text from
`python -m vae_jax.<command>` to the end of its shell segment (`&&`, `;`,
`|`, a `#` comment or the end of the line, after joining `\\`
continuations). A segment with an ellipsis (`...`) is an outline, not a
whole command, and is skipped; inline code in prose is never run.
"""

import functools
import importlib.util
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = sorted(
  [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]
  + [REPO_ROOT / d / "README.md" for d in ("benchmarks", "launch", "colabs")]
)
COMMANDS = ("main", "sweep", "analyze", "sample", "compare", "export")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_COMMAND = re.compile(r"python -m vae_jax\.(\w+)\b(.*)")


def _fenced_blocks(text: str) -> list[str]:
  return [block.split("\n", 1)[1] for block in _FENCE.findall(text)]


def _prose(text: str) -> str:
  return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
  """GitHub's anchor of a Markdown heading."""
  heading = re.sub(r"[`*_]", "", heading.strip().lower())
  return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
  text = _FENCE.sub("", path.read_text())
  return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def broken_links(path: pathlib.Path) -> list[str]:
  """The relative links and images of a Markdown file that lead nowhere."""
  broken = []
  for target in _LINK.findall(_prose(path.read_text())):
    if re.match(r"[a-z]+:", target):  # http:, https:, mailto:.
      continue
    file_part, _, anchor = target.partition("#")
    linked = (path.parent / file_part).resolve() if file_part else path
    if not linked.exists():
      broken.append(target)
    elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
      broken.append(target)
  return broken


def shown_commands(text: str) -> list[tuple[str, list[str]]]:
  """(command, argv) of every whole `python -m vae_jax.*` command shown."""
  found = []
  for block in _fenced_blocks(text):
    for line in block.replace("\\\n", " ").splitlines():
      code = line.split(" #", 1)[0]
      for segment in re.split(r"&&|;|\|", code):
        match = _COMMAND.search(segment)
        if match and "..." not in segment:
          name, rest = match.groups()
          found.append((name, [f"vae_jax.{name}", *shlex.split(rest)]))
  return found


# Imports each command module with the global absl FLAGS to itself (their
# flags overlap: analyze and sample both define --workdir), and parses each
# of its command lines without running it. `--config=` loads the config file
# (ml_collections reads the overrides from sys.argv), so a wrong config path
# or field fails too. Prints one JSON list of [argv, error or null].
_PARSE_SCRIPT = """
import importlib, json, sys
from absl import flags
FLAGS = flags.FLAGS
commands = json.load(sys.stdin)
results = []
for name in sorted({argv[0] for argv in commands}):
  before = set(FLAGS)
  importlib.import_module(name)
  for argv in (a for a in commands if a[0] == name):
    FLAGS.unparse_flags()
    for flag in [f for f in FLAGS if f.startswith("config.")]:
      delattr(FLAGS, flag)
    sys.argv = argv
    try:
      FLAGS(argv)
      if "config" in FLAGS:  # A config file that failed to load raises here.
        FLAGS.config.to_dict()
      results.append([argv, None])
    except BaseException as e:  # absl, ml_collections and configs' errors.
      results.append([argv, f"{type(e).__name__}: {e}"])
  for flag in set(FLAGS) - before:
    delattr(FLAGS, flag)
print(json.dumps(results))
"""


def parse_in_subprocess(commands: list[list[str]]) -> list[tuple[list, str]]:
  """[(argv, error)] of the command lines absl or their config refused."""
  done = subprocess.run(
    [sys.executable, "-c", _PARSE_SCRIPT],
    input=json.dumps(commands),
    cwd=REPO_ROOT,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    text=True,
    check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads(done.stdout.strip().splitlines()[-1])
  return [(argv, error) for argv, error in results if error]


@functools.cache
def tables_module():
  spec = importlib.util.spec_from_file_location(
    "benchmark_tables", REPO_ROOT / "benchmarks" / "tables.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize(
  "path", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_every_link_and_image_resolves(path):
  assert broken_links(path) == []


def test_broken_links_and_anchors_are_found(tmp_path):
  (tmp_path / "other.md").write_text("# A heading, with `code`\n")
  page = tmp_path / "page.md"
  page.write_text(
    "[ok](other.md) [ok](other.md#a-heading-with-code) ![gone](gone.png)\n"
    "[bad anchor](other.md#nowhere) [web](https://example.com) `[no](x.md)`\n"
    "```\n[in code](y.md)\n```\n"
  )
  assert broken_links(page) == ["gone.png", "other.md#nowhere"]


def test_commands_are_read_whole_from_code_blocks():
  text = (
    "`python -m vae_jax.main --inline`\n```bash\n"
    "pip install -e . && python -m vae_jax.main --config=c.py"
    " --workdir=/tmp/w\n"
    "python -m vae_jax.sweep --config=c.py \\\n    --sweep='a=1,2'  # note\n"
    "python -m vae_jax.main --config=... --workdir=DIR\n```\n"
  )
  assert shown_commands(text) == [
    ("main", ["vae_jax.main", "--config=c.py", "--workdir=/tmp/w"]),
    ("sweep", ["vae_jax.sweep", "--config=c.py", "--sweep=a=1,2"]),
  ]


def test_every_shown_command_parses_and_a_mistyped_one_does_not():
  shown = [
    argv for path in DOCS for _, argv in shown_commands(path.read_text())
  ]
  assert {argv[0] for argv in shown} == {f"vae_jax.{c}" for c in COMMANDS}
  # The check must be able to fail: a mistyped flag, a mistyped config
  # field and a config file that does not exist, one per kind of command.
  wrong = [
    ["vae_jax.analyze", "--workdir=/tmp/w", "--iwae_kk=5"],
    [
      "vae_jax.main",
      "--config=configs/mnist_linear.py",
      "--workdir=/tmp/w",
      "--config.loss.kl_wieght=1",
    ],
    ["vae_jax.sweep", "--config=configs/no_such.py", "--workdir=/tmp/w"],
  ]
  refused = parse_in_subprocess(shown + wrong)
  assert [(argv, error) for argv, error in refused if argv not in wrong] == []
  assert sorted(argv for argv, _ in refused) == sorted(wrong)


def test_tests_named_in_the_docs_exist():
  defined = set()
  for test_file in (REPO_ROOT / "tests").glob("test_*.py"):
    defined |= set(re.findall(r"^def (test_\w+)", test_file.read_text(), re.M))
  named = set()
  for path in DOCS:  # Where a line cites a test file, not a metric.
    for line in path.read_text().splitlines():
      if "tests/test_" in line:
        named |= set(re.findall(r"`(test_\w+)`", line))
  assert named and named - defined == set()


def test_benchmark_tables_are_printed_from_the_stored_results():
  # The benchmarks' page, and the reproduction table's own.
  pages = "\n".join(
    (REPO_ROOT / page).read_text()
    for page in ("benchmarks/README.md", "docs/reproductions.md")
  )
  results = sorted((REPO_ROOT / "benchmarks" / "results").glob("*.json"))
  shown = re.findall(r"python benchmarks/tables.py (\S+)", pages)
  assert {str(r.relative_to(REPO_ROOT)) for r in results} == set(shown)
  for path in results:
    table = tables_module().table(str(path))
    if "train_throughput" not in path.name:  # Stored, not current: not shown.
      assert table in pages, path.name


def test_tables_print_a_vs_pytorch_row(tmp_path):
  path = tmp_path / "vs_pytorch_test_machine.json"
  path.write_text(
    json.dumps(
      {
        "machine": {"cpu_count": 2},
        "rounds": 3,
        "configs": [
          {
            "config": "mnist_linear",
            "ms_per_step": {
              "vae_jax": 2.0,
              "pytorch": 5.0,
              "pytorch_1_thread": 1234.5,
            },
            "ratio": 2.5,
            "load_average": [1.25, 1.0, 1.0],
          }
        ],
        "whole_job_seconds": {"vae_jax.main": 38.6},
      }
    )
  )
  table = tables_module().table(str(path))
  assert "| `mnist_linear` | 2.00 | 5.00 / 1,234 | 2.50 | 1.2 |" in table
  assert "| `vae_jax.main` | 39 |" in table
  with pytest.raises(SystemExit, match="not named"):
    tables_module().table(str(tmp_path / "unknown_machine.json"))
