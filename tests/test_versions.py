"""Version numbers under an export base: two exports at the same moment never share one."""

import os
import threading
import uuid

import pytest
import tensorflow as tf

from fkd_tf.core import models
from fkd_tf.serving import saved_model, versions
from fkd_tf.core.framing import Framing
from fkd_tf.serving.module import Stage


def _stale_count(monkeypatch, stale_calls):
  """versions.next_version answers 1 for its first `stale_calls` calls, as it did for an
  export that counted before another one committed version 1."""
  real, calls = versions.next_version, []
  def counted_early(export_base):
    calls.append(export_base)
    return 1 if len(calls) <= stale_calls else real(export_base)
  monkeypatch.setattr(versions, "next_version", counted_early)


def _read(path):
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "remote"])
def test_an_export_that_counted_before_another_committed_takes_the_next_number(
    where, tmp_path, monkeypatch):
  base = str(tmp_path / "export") if where == "local" else f"ram://race_{uuid.uuid4().hex}"
  network, other = models.build("tiny"), models.build("tiny")
  first = saved_model.export([Stage(network, Framing(90.0, "centered"))], base, litert=False)
  first_model = _read(f"{first}/saved_model.pb")
  first_files = sorted(tf.io.gfile.listdir(first))
  _stale_count(monkeypatch, stale_calls=2)
  # Locally the second export's rename met version 1 and failed ("Directory not empty");
  # on ram:// (as on gs://) it uploaded into version 1, over the first export's files.
  second = saved_model.export([Stage(other, Framing(90.0, "centered"))], base, litert=False)
  assert second.endswith("/2") and versions.versions(base) == [1, 2]
  assert _read(f"{first}/saved_model.pb") == first_model
  assert sorted(tf.io.gfile.listdir(first)) == first_files
  assert versions.resolve_saved_model(base) == second


def test_many_commits_at_once_get_distinct_numbers(tmp_path):
  base = tmp_path / "export"
  (base / "1").mkdir(parents=True)
  (base / "1" / "saved_model.pb").write_text("one")
  staged = []
  for index in range(8):
    folder = base / f".tmp-{index}"
    folder.mkdir()
    (folder / "saved_model.pb").write_text(f"export {index}")
    staged.append(str(folder))
  start, committed = threading.Barrier(len(staged)), {}
  def commit(folder):
    start.wait()
    committed[folder] = versions.commit_version(folder, str(base))
  threads = [threading.Thread(target=commit, args=(folder,)) for folder in staged]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert sorted(int(os.path.basename(path)) for path in committed.values()) == list(
      range(2, 10))
  for index, folder in enumerate(staged):  # each version holds its own export, whole
    assert open(os.path.join(committed[folder], "saved_model.pb")).read() == f"export {index}"
  assert (base / "1" / "saved_model.pb").read_text() == "one"


def test_a_remote_claim_that_meets_another_in_the_same_instant_moves_on(monkeypatch):
  base = f"ram://claims_{uuid.uuid4().hex}"
  real_makedirs = tf.io.gfile.makedirs
  def rival_claims_too(path):
    real_makedirs(path)
    if path.endswith("/1"):  # another export claims version 1 between our look and claim
      with tf.io.gfile.GFile(f"{path}/.claim-rival", "w") as f:
        f.write("rival")
  monkeypatch.setattr(tf.io.gfile, "makedirs", rival_claims_too)
  claimed = versions.claim_remote_version(base)
  assert claimed == f"{base}/2"
  assert tf.io.gfile.listdir(f"{base}/1") == [".claim-rival"]  # ours withdrawn
  assert len(tf.io.gfile.listdir(claimed)) == 1
