"""Every command's start (fkd_tf.cli): --help lists its own flags fast, errors in one line,
flagfiles that include each other from any folder, no alarming TensorFlow lines on a CPU.
"""

import configparser
import os
import subprocess
import sys

import pytest

from fkd_tf.cli import flagfiles

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def console_scripts():
  """{command: (module, function)} from setup.cfg's console_scripts, as pip installs them."""
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO, "setup.cfg"))
  scripts = {}
  for line in parser["options.entry_points"]["console_scripts"].strip().splitlines():
    name, target = (part.strip() for part in line.split("="))
    module, function = target.split(":")
    # Installed, tools/ is fkd_tf_tools; in a checkout it is `tools`.
    scripts[name] = (module.replace("fkd_tf_tools", "tools"), function)
  return scripts


_HELP_PROBE = """
import sys, importlib
sys.argv = [{name!r}, "--help"]
run = getattr(importlib.import_module({module!r}), {function!r})
try:
  run()
  code = None
except SystemExit as e:
  code = e.code
print("EXIT", code, "TENSORFLOW", "tensorflow" in sys.modules, file=sys.stderr)
"""


def _help(name):
  module, function = console_scripts()[name]
  return subprocess.run(
      [sys.executable, "-c", _HELP_PROBE.format(name=name, module=module, function=function)],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
      timeout=300)


def own_flags(module):
  """The flag names a command's module defines itself (DEFINE_*("name", ...))."""
  import re  # pylint: disable=g-import-not-at-top
  source = open(os.path.join(REPO, *module.split(".")) + ".py").read()
  return re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_help_lists_the_commands_own_flags_and_exits_0(name):
  result = _help(name)
  assert "EXIT 0 " in result.stderr or "EXIT None" in result.stderr, result.stderr[-2000:]
  module, _ = console_scripts()[name]
  names = own_flags(module) or ["model_dir", "flip_prob"]  # train's come from TrainConfig
  for flag in names:
    assert f"--{flag}" in result.stdout or f"--[no]{flag}" in result.stdout, (flag, name)
  assert "Try --helpfull" not in result.stdout
  assert "--stderrthreshold" not in result.stdout  # absl's own flags only with --helpfull
  assert "TENSORFLOW False" in result.stderr, f"{name} --help imported TensorFlow"


@pytest.mark.slow
def test_saved_model_is_in_predicts_and_inspects_own_help():
  for name in ("fkd-predict", "fkd-inspect", "fkd-evaluate"):
    result = _help(name)
    assert "--saved_model:" in result.stdout, name


@pytest.mark.slow
def test_flag_errors_are_one_line_without_the_help(tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO)
  result = subprocess.run([sys.executable, "-m", "fkd_tf.export", "--no_such_flag=1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "error: Unknown command line flag 'no_such_flag' (--help lists the flags)"]
  # A UsageError from main: its lines, no help text before them.
  result = subprocess.run([sys.executable, "-m", "fkd_tf.predict"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: give image or video files, or folders of them")
  assert "flags:" not in result.stderr and "Pass --helpshort" not in result.stderr


# --- flagfiles ---------------------------------------------------------------------------


def test_nested_flagfiles_are_found_beside_the_including_file(tmp_path, monkeypatch):
  (tmp_path / "recipes" / "common").mkdir(parents=True)
  (tmp_path / "recipes" / "common" / "shared.flags").write_text("--epochs=7\n")
  (tmp_path / "recipes" / "run.flags").write_text(
      "# a comment\n\n--flagfile=common/shared.flags\n--batch_size=8\n")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  monkeypatch.chdir(elsewhere)
  assert flagfiles.read(str(tmp_path / "recipes" / "run.flags")) == [
      "--epochs=7", "--batch_size=8"]
  assert flagfiles.expand_argv(["prog", f"--flagfile={tmp_path}/recipes/run.flags",
                                "--seed=3", "--", "--flagfile=x"]) == [
      "prog", "--epochs=7", "--batch_size=8", "--seed=3", "--", "--flagfile=x"]


def test_a_missing_nested_flagfile_names_both_files(tmp_path):
  (tmp_path / "run.flags").write_text("--flagfile=absent.flags\n")
  with pytest.raises(flagfiles.FlagfileError, match=r"absent.flags \(included by .*run.flags\)"):
    flagfiles.read(str(tmp_path / "run.flags"))
  (tmp_path / "loop.flags").write_text("--flagfile=loop.flags\n")
  with pytest.raises(flagfiles.FlagfileError, match="nest deeper"):
    flagfiles.read(str(tmp_path / "loop.flags"))


def test_every_recipe_reads_from_another_folder(tmp_path):
  """The checkout's flagfiles, read from outside it: the bug was `Unable to open flagfile:
  configs/base.flags` from any other folder."""
  configs = os.path.join(REPO, "configs")
  os.chdir(tmp_path)
  try:
    for name in sorted(os.listdir(configs)):
      if name.endswith(".flags"):
        flags = flagfiles.read(os.path.join(configs, name))
        assert not any(f.startswith("--flagfile") for f in flags), name
        assert any(f.startswith(("--model_dir=", "--model_dirs=")) for f in flags), name
  finally:
    os.chdir(REPO)


def test_every_flagfile_opens_with_its_command_wall_time_and_result():
  configs = os.path.join(REPO, "configs")
  for name in sorted(os.listdir(configs)):
    if not name.endswith(".flags") or name.startswith("facemesh"):
      continue  # facemesh*: another recipe family, headed by its own author
    head = open(os.path.join(configs, name)).read().splitlines()[:4]
    assert head[0].startswith(f"# python -m fkd_tf.") and f"configs/{name}" in head[0], name
    text = " ".join(head)
    assert "Wall time:" in text and "Result:" in text, name


# --- what a CPU machine prints -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(os.path.exists("/proc/driver/nvidia"), reason="a GPU machine")
def test_no_cuinit_error_on_a_cpu_machine(tmp_path):
  """The GPU probe's `E0000 ... failed call to cuInit` is not printed where no driver is."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["PYTHONPATH"] = REPO
  script = ("import fkd_tf, tensorflow as tf; print(tf.config.list_physical_devices('GPU'))")
  result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "[]"
  assert "cuInit" not in result.stderr and "E0000" not in result.stderr


def test_a_checkout_relative_include_is_found_from_another_folder(tmp_path, monkeypatch):
  """`--flagfile=configs/base.flags` inside configs/x.flags, as the recipes were written."""
  (tmp_path / "checkout" / "configs").mkdir(parents=True)
  (tmp_path / "checkout" / "configs" / "base.flags").write_text("--epochs=50\n")
  (tmp_path / "checkout" / "configs" / "x.flags").write_text(
      "--flagfile=configs/base.flags\n--epochs=2\n")
  monkeypatch.chdir(tmp_path)
  assert flagfiles.read("checkout/configs/x.flags") == ["--epochs=50", "--epochs=2"]


def test_default_output_folders_are_named_after_the_export():
  from fkd_tf.cli import common_flags  # pylint: disable=g-import-not-at-top
  assert common_flags.export_name("fkd_tf/shipped/fkd_default/2") == "fkd_default"
  assert common_flags.export_name("runs/smoke/export") == "smoke"
  assert common_flags.export_name("runs/smoke/export/1/") == "smoke"
  assert common_flags.export_name("gs://bucket/model/3") == "model"
  assert common_flags.export_name(None) == "fkd_default"


@pytest.mark.slow
def test_evaluate_outside_a_checkout_says_where_it_looked(tmp_path):
  """`fkd-evaluate --split=val` from a folder without data/tfrecords: one line naming the
  flag and the folder (it was a 20-line traceback), and nothing written."""
  result = subprocess.run([sys.executable, "-m", "fkd_tf.evaluate", "--split=val"],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=REPO,
                                                 TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: --tfrecord_dir=data/tfrecords:"), result.stderr[-2000:]
  assert f"looked in {tmp_path}/data/tfrecords" in last
  assert "Traceback" not in result.stderr
  assert os.listdir(tmp_path) == []
