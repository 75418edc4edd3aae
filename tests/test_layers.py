"""The package's layering rules, checked on its source with `ast` (BUILD.md, "Layout").

Each rule is a test; `test_rules_catch_a_forbidden_import` shows the checker fails when a
forbidden import is added, so a green run means the rules hold, not that nothing looked.
"""

import ast
import pathlib
import re

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent / "fkd_tf"
# The package top: the commands a user runs, flags and main only.
COMMAND_LINE = {"fkd_tf.train", "fkd_tf.evaluate", "fkd_tf.export", "fkd_tf.predict",
                "fkd_tf.inspect", "fkd_tf.bench"}
# What only the commands import: flags defined once for several of them.
COMMAND_SUPPORT = "fkd_tf.cli"


def package_sources():
  """{module name: source text} of every module in fkd_tf/."""
  sources = {}
  for path in sorted(PACKAGE_DIR.rglob("*.py")):
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    sources[".".join(parts)] = path.read_text()
  return sources


def imports_of(source, modules):
  """Every module imported anywhere in `source` (top level or inside functions)."""
  found = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from fkd_tf.core import models` imports the module fkd_tf.core.models; the package
      # itself counts only for names that are not modules (`from fkd_tf import load`).
      submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(modules)
      found.update(submodules)
      if len(submodules) < len(node.names):
        found.add(node.module)
  return found


def import_graph(sources):
  """{module: set of fkd_tf modules it imports}."""
  return {name: {m for m in imports_of(src, sources) if m in sources and m != name}
          for name, src in sources.items()}


def _under(module, *prefixes):
  return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(sources):
  """Every broken rule, as readable lines; empty when the package keeps them all."""
  problems = []
  graph = import_graph(sources)
  for name, source in sources.items():
    imported = imports_of(source, sources)
    local = graph[name]
    if _under(name, "fkd_tf.core"):
      bad = {m for m in local if not _under(m, "fkd_tf.core")}
      bad |= {m for m in imported if _under(m, "absl")}
      problems += [f"{name} (core) imports {m}" for m in sorted(bad)]
    if name == "fkd_tf.core.models":
      allowed = ("keras", "tensorflow", "fkd_tf.core.keypoints")
      problems += [f"{name} imports {m}" for m in sorted(imported) if not _under(m, *allowed)]
    if _under(name, "fkd_tf.utils"):
      problems += [f"{name} (utils) imports {m}" for m in sorted(local)
                   if not _under(m, "fkd_tf.core", "fkd_tf.utils")]
    if _under(name, "fkd_tf.data"):
      problems += [f"{name} (data) imports {m}" for m in sorted(local) if _under(
          m, "fkd_tf.core.models", "fkd_tf.training", "fkd_tf.serving", "fkd_tf.inference",
          "fkd_tf.evaluation")]
    if _under(name, "fkd_tf.serving"):
      problems += [f"{name} (serving) imports {m}" for m in sorted(local) if _under(
          m, "fkd_tf.training", "fkd_tf.inference", "fkd_tf.evaluation")]
    if _under(name, "fkd_tf.inference"):
      problems += [f"{name} (inference) imports {m}" for m in sorted(local) if _under(
          m, "fkd_tf.training", "fkd_tf.evaluation")]
    if name in ("fkd_tf.evaluation.reports", "fkd_tf.evaluation.inspection"):
      problems += [f"{name} imports {m}" for m in sorted(local) if _under(m, "fkd_tf.training")]
    problems += [f"{name} imports the command-line module {m}" for m in sorted(local)
                 if m in COMMAND_LINE]
    is_command = name in COMMAND_LINE or _under(name, COMMAND_SUPPORT)
    if not is_command:
      problems += [f"{name} imports the command support {m}" for m in sorted(local)
                   if _under(m, COMMAND_SUPPORT)]
    if not is_command and re.search(r"\bFLAGS\b", source):
      problems.append(f"{name} uses FLAGS outside the command-line modules")
  problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
  return problems


def cycles(graph):
  """Import cycles of the graph, each once, as module lists closing on their start."""
  found, state = [], {}

  def visit(node, path):
    state[node] = "active"
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "active":
        found.append(path[path.index(nxt):] + [nxt])
      elif nxt not in state:
        visit(nxt, path + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  return found


def test_package_keeps_every_layering_rule():
  sources = package_sources()
  assert len(sources) > 20  # the walk found the package
  assert violations(sources) == []


def test_the_package_top_holds_only_commands():
  top = {f"fkd_tf.{path.stem}" for path in PACKAGE_DIR.glob("*.py")}
  assert top == COMMAND_LINE | {"fkd_tf.__init__"}


def test_rules_catch_a_forbidden_import():
  sources = package_sources()
  broken = dict(sources)
  broken["fkd_tf.serving.module"] += "\nfrom fkd_tf.training import train_lib\n"
  broken["fkd_tf.core.geometry"] += "\nfrom absl import flags\nFLAGS = flags.FLAGS\n"
  problems = violations(broken)
  assert "fkd_tf.serving.module (serving) imports fkd_tf.training.train_lib" in problems
  assert "fkd_tf.core.geometry (core) imports absl" in problems
  assert "fkd_tf.core.geometry uses FLAGS outside the command-line modules" in problems
  broken["fkd_tf.inference.api"] += "\nfrom fkd_tf import predict\nfrom fkd_tf.cli import common_flags\n"
  problems = violations(broken)
  assert "fkd_tf.inference.api imports the command-line module fkd_tf.predict" in problems
  assert "fkd_tf.inference.api imports the command support fkd_tf.cli.common_flags" in problems
  # train_lib imports serving.saved_model -> serving.module, so that import closes a cycle.
  assert any(p.startswith("import cycle:") for p in problems)


def test_cycle_finder_on_a_known_graph():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert cycles(graph) == [["a", "b", "c", "a"]]
  assert cycles({"a": {"b"}, "b": set()}) == []
