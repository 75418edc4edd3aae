"""Who may write into a run folder, and with which settings: checked before any write.

Two trainings on one --model_dir would interleave their backups, checkpoints and logs, and
a rerun with another network over a finished run would overwrite its config.json before
failing to load its backup. `claim` prevents both: it takes the folder's lock (one owner
at a time) and compares the folder's config.json with the new settings, and only then may
the caller write.
"""

import json
import os
import socket
import time

from absl import logging
import tensorflow as tf

from fkd_tf.serving import run_folder
from fkd_tf.utils import io_utils

LOCK = ".lock"
RESULTS = "results.json"  # written last by a run's chief: the run is finished
BACKUP = "backup"  # the chief's resume backup (callbacks.GuardedBackupAndRestore)
# Settings whose change makes a run's weights (best or backup) mean something else or not
# load at all; every other setting (epochs, learning rate, augmentation magnitudes, ...)
# may change between reruns of one folder.
WEIGHT_SETTINGS = {
    "model": "the network, so its weights",
    "normalisation": "what the network's outputs mean",
    "augment.region": "what the network sees: the whole image or the keypoint box",
    "augment.region_margin": "the framing of its input",
    "augment.rescale_size": "the scale of its input",
    # float16 wraps the optimizer in a LossScaleOptimizer, whose state the backup holds.
    "mixed_precision": "the optimizer state in the backup",
}


class RunFolderBusy(run_folder.RunFolderError):
  """Another live training owns the run folder."""


class RunFolderMismatch(run_folder.RunFolderError):
  """The run folder holds a run whose weights these settings cannot continue."""


def make_folder(model_dir):
  """Creates model_dir; an impossible or unwritable path is a RunFolderError naming it."""
  if io_utils.is_remote(model_dir):
    try:
      tf.io.gfile.makedirs(model_dir)
    except tf.errors.OpError as e:
      raise run_folder.RunFolderError(
          f"--model_dir {model_dir} cannot be created: {e.message}") from None
    if not tf.io.gfile.isdir(model_dir):
      raise run_folder.RunFolderError(f"--model_dir {model_dir} is a file, not a folder")
    return
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise run_folder.RunFolderError(f"--model_dir {model_dir} is a file, not a folder")
  try:
    os.makedirs(model_dir, exist_ok=True)
  except OSError as e:
    raise run_folder.RunFolderError(
        f"--model_dir {model_dir} cannot be created: {e.strerror or e}") from None
  if not os.access(model_dir, os.W_OK | os.X_OK):
    raise run_folder.RunFolderError(f"--model_dir {model_dir} is not writable")


class RunFinished(run_folder.RunFolderError):
  """The run folder holds a finished run that these settings would only repeat."""


def refuse_memory_folder(model_dir):
  """ram:// is TensorFlow's in-memory file system: a run there trains, exports and is
  gone when the process ends, so the command line refuses it (tests opt in)."""
  if str(model_dir).startswith("ram://"):
    raise run_folder.RunFolderError(
        f"--model_dir={model_dir} is in memory (ram://): the run and its export would vanish "
        "when training ends; choose a folder on disk or on gs://")


def _read_json(path):
  """The JSON object at path, or None when it is missing or unreadable."""
  try:
    with tf.io.gfile.GFile(path) as f:
      value = json.load(f)
  except (tf.errors.OpError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def backup_epoch(model_dir):
  """Epochs completed in the chief's resume backup, or None without a readable one."""
  metadata = _read_json(os.path.join(model_dir, BACKUP, "training_metadata.json"))
  epoch = (metadata or {}).get("epoch")
  return epoch if isinstance(epoch, int) else None


def finished_epochs(model_dir):
  """Epochs of the run that last finished in model_dir (it wrote results.json), or None.

  results.json records them since this check exists; an older one counts its
  config.json's epochs, the settings it finished with.
  """
  results = _read_json(os.path.join(model_dir, RESULTS))
  if results is None:
    return None
  if isinstance(results.get("epochs"), int):
    return results["epochs"]
  try:
    return run_folder.read_config(model_dir).epochs
  except run_folder.RunFolderError:
    return None


def check_not_finished(model_dir, config):
  """Refuses a rerun of a finished run that asks for no more epochs than it trained.

  The same command again after a run finished would otherwise train nothing useful yet
  rewrite its best checkpoint, results and export (the backup resumes it at its last
  epoch, so fit has nothing left to do), or, with an older run whose backup was deleted
  at the end, train from epoch 1 again over its logs. More epochs continue from the
  backup's last one.

  Raises:
    RunFinished naming the folder and the epochs.
  """
  done = finished_epochs(model_dir)
  if done is None:
    return
  if config.epochs <= done:
    counted = (f"{done}/{config.epochs} epochs" if config.epochs == done else
               f"{done} epochs, --epochs={config.epochs} asks for fewer")
    raise RunFinished(f"{model_dir} is finished ({counted}): nothing to do; raise --epochs "
                      "to continue or choose another --model_dir")
  saved = backup_epoch(model_dir)
  if saved is None or saved < done:
    raise RunFinished(
        f"{model_dir} finished {done} epochs but keeps no backup of epoch {done} to continue "
        f"from (runs made before backups were kept delete it at the end): choose another "
        f"--model_dir, with --init_from={model_dir} to start from its network")


def _setting(config, dotted_name):
  value = config
  for part in dotted_name.split("."):
    value = getattr(value, part)
  return value


def check_compatible(model_dir, config):
  """Raises RunFolderMismatch when model_dir's config.json was trained with other
  WEIGHT_SETTINGS than `config`; a folder without config.json is a new run."""
  if not tf.io.gfile.exists(os.path.join(model_dir, run_folder.CONFIG)):
    return
  existing = run_folder.read_config(model_dir)
  differences = [
      f"--{name.split('.')[-1]}: {_setting(existing, name)!r} there, "
      f"{_setting(config, name)!r} now ({meaning})"
      for name, meaning in WEIGHT_SETTINGS.items()
      if _setting(existing, name) != _setting(config, name)]
  if differences:
    raise RunFolderMismatch(
        f"{model_dir} holds a run made with other settings, so its weights cannot continue "
        "under these: " + "; ".join(differences) + ". Choose another --model_dir, or "
        f"rerun with that run's settings (its {run_folder.CONFIG}).")


def _process_start_ticks(pid):
  """The process's start time in clock ticks since boot (Linux), None elsewhere.

  A pid alone can be reused after its process ends; the pair (pid, start) cannot.
  """
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
  except OSError:
    return None
  # Field 22 of proc(5); fields are counted after the command name's closing bracket,
  # since the name itself may hold spaces.
  return int(stat.rsplit(")", 1)[1].split()[19])


def _alive_here(owner):
  """True while the lock's owner (a process on this host) still runs."""
  try:
    os.kill(owner["pid"], 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # alive, under another user
  recorded, current = owner.get("start_ticks"), _process_start_ticks(owner["pid"])
  return recorded is None or current is None or recorded == current


class RunLock:
  """Ownership of a run folder: <model_dir>/.lock holds the owner's pid and host.

  Created with O_EXCL, so of two trainings starting together exactly one gets it. A lock
  left by a process that died on this host (kill -9, power loss) is taken over with a
  warning; a live owner, or one on another host (whose pid cannot be checked from here),
  is refused. Use as a context manager: the lock goes when the `with` block ends.

  On a remote folder (gs://, ram://) tf.io.gfile has no exclusive create: the lock is
  checked, then written, so it refuses a training that starts while another runs but not
  one that starts in the same instant.
  """

  def __init__(self, model_dir, name=LOCK):
    self.model_dir = model_dir
    self.path = os.path.join(model_dir, name)
    self.held = False

  def _owner_record(self):
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start_ticks": _process_start_ticks(pid),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}

  def _read_owner(self):
    """The lock's record, or None when it vanished; waits briefly for a lock being written."""
    for _ in range(20):
      try:
        with tf.io.gfile.GFile(self.path) as f:
          text = f.read()
      except tf.errors.NotFoundError:
        return None
      try:
        owner = json.loads(text)
      except ValueError:
        time.sleep(0.05)  # its owner created it an instant ago and is writing it
        continue
      if isinstance(owner, dict) and isinstance(owner.get("pid"), int):
        return owner
      break
    raise RunFolderBusy(f"{self.model_dir} has a lock file {self.path} that is not readable; "
                        "delete it if no training uses this folder")

  def _create(self):
    """True when this process created the lock; False when it already existed."""
    if io_utils.is_remote(self.path):
      if tf.io.gfile.exists(self.path):
        return False
      with tf.io.gfile.GFile(self.path, "w") as f:
        f.write(json.dumps(self._owner_record()))
      return True
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    except OSError as e:
      raise run_folder.RunFolderError(
          f"--model_dir {self.model_dir} is not writable: cannot create {self.path}: "
          f"{e.strerror or e}") from None
    with os.fdopen(fd, "w") as f:
      f.write(json.dumps(self._owner_record()))
    return True

  def _take_over(self, stale):
    """Removes the stale lock unless another process replaced it meanwhile."""
    if io_utils.is_remote(self.path):
      if self._read_owner() == stale:
        tf.io.gfile.remove(self.path)
      return
    aside = f"{self.path}.stale-{os.getpid()}"
    try:
      os.rename(self.path, aside)  # atomic: of two processes taking over, one moves it
    except FileNotFoundError:
      return
    with open(aside) as f:
      moved = f.read()
    try:
      still_stale = json.loads(moved) == stale
    except ValueError:
      still_stale = False  # a new owner's lock, caught while being written
    if not still_stale:
      # A third process had already replaced the stale lock with its own: put it back.
      try:
        os.link(aside, self.path)
      except FileExistsError:
        pass
    os.remove(aside)

  def acquire(self):
    """Takes the lock; raises RunFolderBusy naming the folder and the owning process."""
    host = socket.gethostname()
    for _ in range(3):
      if self._create():
        self.held = True
        return self
      owner = self._read_owner()
      if owner is None:
        continue  # released between our two looks
      if owner.get("host") == host and not _alive_here(owner):
        logging.warning("%s: taking over the lock of process %s, which ended without "
                        "releasing it (since %s)", self.model_dir, owner.get("pid"),
                        owner.get("since"))
        self._take_over(owner)
        continue
      where = "" if owner.get("host") == host else f" on host {owner.get('host')}"
      hint = ("" if owner.get("host") == host else
              f"; if that training has ended, delete {self.path}")
      raise RunFolderBusy(
          f"{self.model_dir} is in use by another training: process {owner.get('pid')}"
          f"{where}, since {owner.get('since')}. Wait for it to end or choose another "
          f"--model_dir{hint}.")
    raise RunFolderBusy(f"{self.model_dir}: could not take its lock {self.path}; another "
                        "training keeps claiming it")

  def release(self):
    if self.held:
      self.held = False
      try:
        tf.io.gfile.remove(self.path)
      except tf.errors.NotFoundError:
        pass

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc_info):
    self.release()
