"""OUTPUT_DIR as the folder of one training run: its lock (one run at a time), its config.yaml
(never replaced without a word), and the checkpoint a resume starts from, checked against the
config it was trained with and the schedule of this run. Rank 0 decides each of these; every
rank gets its answer or its error."""
import glob
import logging
import os
import re
from typing import Dict, Optional, Tuple

from ..checkpoint.schema import load_checkpoint
from ..config import ConfigError, merge_config, merge_config_text
from ..config.resume import config_changes, describe_changes
from ..utils.distributed import is_main, on_main
from ..utils.io import FileLock, LockHeldError, describe_holder, write_text
from .checkpointer import Checkpointer
from .monitor import MetricWriter

logger = logging.getLogger(__name__)
LOCK_FILE = "run.lock"
CONFIG_FILE = "config.yaml"
SWITCH = "TRAIN.RESUME_CHANGED_CONFIG"

Changes = Tuple[Dict, Dict]  # (result-changing, neutral): key -> (the run's value, this config's)


def lock_output_dir(output_dir: str) -> Tuple[Optional[FileLock], Dict]:
    """Takes OUTPUT_DIR/run.lock on rank 0 (the lock, None elsewhere) and returns it with the
    record of a dead run whose lock was taken over ({} when none). ConfigError on every rank,
    naming the folder and the holder, when another run holds it (naming the folder when it
    cannot be written)."""
    lock = FileLock(os.path.join(output_dir, LOCK_FILE)) if is_main() else None

    def take() -> Dict:
        try:
            return lock.acquire()
        except LockHeldError as e:
            raise ConfigError(f"OUTPUT_DIR {output_dir} is in use by another training run "
                              f"({describe_holder(e.holder)}, lock {e.path}): wait for it to finish or choose "
                              f"another OUTPUT_DIR (if no run is active there, remove {e.path})") from None
        except OSError as e:  # a read-only or unreachable folder: the first write of the run fails here
            raise ConfigError(f"OUTPUT_DIR {output_dir}: cannot write there ({e.strerror or e})") from None

    return lock, on_main(take)


def log_taken_over(output_dir: str, holder: Dict) -> None:
    if holder:
        logger.warning("%s: the run that held it is gone (%s): lock taken over",
                       os.path.join(output_dir, LOCK_FILE), describe_holder(holder))


def resume_point(cfg, checkpointer: Checkpointer) -> Optional[Tuple[str, dict]]:
    """``(path, checkpoint)`` a TRAIN.AUTO_RESUME run resumes from (:func:`find_resume_checkpoint`),
    or None: the run starts afresh. A fresh run in a folder that holds epoch checkpoints is refused
    (ConfigError naming the folder): its checkpoints would be pruned among the earlier run's and
    a later resume would pick the earlier run's newest."""
    if cfg.TRAIN.AUTO_RESUME:
        return find_resume_checkpoint(checkpointer)

    def refuse_earlier_checkpoints() -> None:
        found = checkpointer.epoch_checkpoints()
        if found:
            raise ConfigError(f"OUTPUT_DIR {cfg.OUTPUT_DIR} holds {len(found)} epoch checkpoint(s) of an earlier run "
                              f"(newest {found[-1]}) and TRAIN.AUTO_RESUME is False: a fresh run there would mix "
                              f"its checkpoints with them; move {checkpointer.dir} away, choose another OUTPUT_DIR, "
                              "or resume with TRAIN.AUTO_RESUME True")

    on_main(refuse_earlier_checkpoints)
    return None


def find_resume_checkpoint(checkpointer: Checkpointer) -> Optional[Tuple[str, dict]]:
    """``(path, checkpoint)`` of the newest readable epoch checkpoint (rank 0 chooses, skipping
    unreadable ones with a warning; the others read the one it chose), or None."""
    chosen: Dict[str, dict] = {}

    def newest() -> Optional[str]:
        found = checkpointer.newest_readable()
        if found is None:
            return None
        chosen[found[0]] = found[1]
        return found[0]

    path = on_main(newest)
    if path is None:
        return None
    return path, chosen[path] if path in chosen else load_checkpoint(path)


def check_resumed_config(cfg, path: str, ckpt: dict) -> Changes:
    """Compares ``cfg`` with the config of checkpoint ``ckpt`` (read from ``path``; rank 0
    compares): the config it was trained with, saved in it by hooks.Checkpointing, else the
    run's OUTPUT_DIR/config.yaml. Keys that change results (config/resume.py) refuse the resume
    with one ConfigError naming each key and both values, unless TRAIN.RESUME_CHANGED_CONFIG;
    returns the changes allowed."""
    def compare() -> Changes:
        started, source = _started_config(cfg.OUTPUT_DIR, path, ckpt)
        if started is None:
            logger.warning("%s holds no config and %s is missing: the resumed run cannot be checked against the "
                           "config it was trained with", path, source)
            return {}, {}
        result, neutral = config_changes(started, cfg)
        if result and not cfg.TRAIN.RESUME_CHANGED_CONFIG:
            raise ConfigError(f"OUTPUT_DIR {cfg.OUTPUT_DIR}: refusing to resume from {source}, whose config differs "
                              f"in {len(result)} key(s) that change results: {describe_changes(result)}; set {SWITCH} "
                              "True to resume anyway, or choose another OUTPUT_DIR")
        return result, neutral

    return on_main(compare)


def _started_config(output_dir: str, path: str, ckpt: dict):
    """``(config, where it was read)``: the checkpoint's own, else OUTPUT_DIR/config.yaml, else
    ``(None, that config.yaml)``."""
    if ckpt.get("cfg"):
        return merge_config_text(ckpt["cfg"], path), path
    yaml_path = os.path.join(output_dir, CONFIG_FILE)
    return (merge_config(yaml_path) if os.path.isfile(yaml_path) else None), yaml_path


def check_resumed_schedule(path: str, ckpt: dict, steps_per_epoch: int, max_epoch: int) -> None:
    """ConfigError when checkpoint ``ckpt`` (read from ``path``) ran another number of optimizer
    steps per epoch than this run has (the train list, TRAIN.BATCH_SIZE or SOLVER.GRAD_ACCUM_STEPS
    changed): the learning-rate schedule counts iterations, so the resumed run would train at
    another point of it than its epoch says, past its end when the resumed iteration is beyond
    the new total. A finished run (no epoch left) passes."""
    epoch, iteration = int(ckpt["epoch"]), ckpt.get("iteration")
    if iteration is None or epoch >= max_epoch or iteration == epoch * steps_per_epoch:
        return
    total = steps_per_epoch * max_epoch
    past = f", which ends before iteration {iteration}" if iteration >= total else ""
    raise ConfigError(f"{path}: cannot resume: it stopped at iteration {iteration} after {epoch} epoch(s) "
                      f"({iteration / epoch:g} optimizer steps per epoch), this run has {steps_per_epoch} per epoch "
                      f"and {total} in all{past}: the train list, TRAIN.BATCH_SIZE or SOLVER.GRAD_ACCUM_STEPS "
                      "changed; start afresh in another OUTPUT_DIR")


def save_config(cfg, changes: Optional[Changes], writer: MetricWriter, epoch: int, iteration: int) -> None:
    """Writes OUTPUT_DIR/config.yaml (rank 0): the full merged config, for test_net, predict and
    load_model. A different one already there is kept as ``config.N.yaml`` (N = 1, 2, ...) and
    said so; a resumed run's changes (``changes``) are also logged and written to metrics.jsonl
    as a ``config_change`` record."""
    if not is_main():
        return
    path, text = os.path.join(cfg.OUTPUT_DIR, CONFIG_FILE), cfg.dump()
    if os.path.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return
        kept = _keep_previous(path)
        if changes is None:
            logger.warning("%s held the config of an earlier run; this run starts afresh: kept as %s", path, kept)
        else:
            _record_changes(changes, writer, epoch, iteration, kept)

    write_text(path, text)


def _record_changes(changes: Changes, writer: MetricWriter, epoch: int, iteration: int, kept: str) -> None:
    result, neutral = changes
    if result:
        logger.warning("resuming after epoch %d with %s True and keys that change results: %s (the run's "
                       "config until now: %s)", epoch, SWITCH, describe_changes(result), kept)
    if neutral:
        logger.info("resuming after epoch %d with changed keys that do not change results: %s (previous config: %s)",
                    epoch, describe_changes(neutral), kept)
    as_lists = lambda c: {k: list(v) for k, v in c.items()}  # noqa: E731
    writer.write("config_change", iteration, {"epoch": epoch, "result_changes": as_lists(result),
                                              "neutral_changes": as_lists(neutral), "previous_config": kept})


def _keep_previous(path: str) -> str:
    """Renames ``config.yaml`` to the next free ``config.N.yaml``; returns the new path."""
    stem = path[:-len(".yaml")]
    taken = [int(m.group(1)) for p in glob.glob(f"{glob.escape(stem)}.*.yaml")
             if (m := re.search(r"\.(\d+)\.yaml$", p))]
    kept = f"{stem}.{max(taken, default=0) + 1}.yaml"
    os.replace(path, kept)
    return kept
