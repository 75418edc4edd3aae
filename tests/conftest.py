import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # pylint: disable=g-import-not-at-top

import fakes  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory):
  """A small synthetic data set in the official layout."""
  folder = str(tmp_path_factory.mktemp("raw"))
  fakes.write_official_layout(folder, persons_train=10, persons_test=3, frames=3)
  return folder


@pytest.fixture(scope="session")
def tfrecord_dir(raw_dir, tmp_path_factory):
  from fkd_tf.data import convert  # pylint: disable=g-import-not-at-top
  folder = os.path.join(str(tmp_path_factory.mktemp("records")), "tfrecords")
  convert.convert(raw_dir, folder, val_fraction=0.2, examples_per_shard=10)
  return folder


@pytest.fixture(scope="session")
def real_dir():
  """The real data set, when it is beside the project (CI has it)."""
  if not os.path.isfile(os.path.join(fakes.SHARED_DATA, "training_frames_keypoints.csv")):
    pytest.skip("the real data set is not at ../shared/data/facial_keypoints")
  return fakes.SHARED_DATA


@pytest.fixture(scope="session")
def real_subset_dir(real_dir, tmp_path_factory):
  """A handful of real faces (a few persons' frames) in the official layout."""
  import shutil  # pylint: disable=g-import-not-at-top
  folder = str(tmp_path_factory.mktemp("real_subset"))
  for image_folder, csv_name, keep in (("training", "training_frames_keypoints.csv", 48),
                                       ("test", "test_frames_keypoints.csv", 16)):
    os.makedirs(os.path.join(folder, image_folder))
    with open(os.path.join(real_dir, csv_name)) as f:
      lines = f.readlines()
    with open(os.path.join(folder, csv_name), "w") as f:
      f.writelines(lines[:1 + keep])
    for line in lines[1:1 + keep]:
      name = line.split(",", 1)[0]
      shutil.copy(os.path.join(real_dir, image_folder, name),
                  os.path.join(folder, image_folder, name))
  return folder


# Fixtures that train a network or run a command in a subprocess: a test using any of them
# belongs to the slow tier, whatever its file.
SLOW_FIXTURES = {"smoke_run"}


def pytest_collection_modifyitems(items):
  for item in items:
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.slow)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, timeout=600):
  """Runs `python -m module args` from the repository root; returns CompletedProcess."""
  import subprocess  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_run(tfrecord_dir, tmp_path_factory):
  """The real training command on configs/smoke.flags, on the synthetic records."""
  model_dir = str(tmp_path_factory.mktemp("smoke") / "run")
  result = run_module("fkd_tf.train", "--flagfile=configs/smoke.flags",
                      f"--tfrecord_dir={tfrecord_dir}", f"--model_dir={model_dir}",
                      "--batch_size=8", "--epochs=3", "--learning_rate=1e-3")
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, result
