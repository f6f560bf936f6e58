"""Which keys a resumed run may change: a run continued in its OUTPUT_DIR is compared with the
config its checkpoint was trained with (engine/rundir.py), key by key.

A key changes the result unless :data:`NEUTRAL_KEYS` says why it cannot: a key added to any
group is result-changing until it is listed here, so the check errs on the side of refusing.
"""
from typing import Dict, Iterator, Tuple

from fvcore.common.config import CfgNode

# Keys (or whole groups: every key under them) whose value cannot change what a run computes:
# key -> why. Everything else (MODEL, DATA but these, SOLVER, SEED, the TRAIN keys of batch,
# precision, evaluation and best-checkpoint choice, SEARCH, ...) changes results.
NEUTRAL_KEYS = {
    "OUTPUT_DIR": "the run's folder (a copied run folder still resumes)",
    "DEVICE": "where the computation runs, not what it computes",
    "DETERMINISTIC": "whether CUDA picks deterministic kernels, not what they compute",
    "NUM_THREADS": "speed only",
    "DATA.CACHE_DECODED": "the same frames, decoded once and kept in memory",
    "DATA.MAX_RETRIES": "how many replacements of a broken video are tried before the run stops",
    "DATA.MAX_FAILED_FRACTION": "when the run stops on broken videos, not what it learns",
    "DATA_LOADER": "workers and pinned memory: speed only (items are seeded by SEED, epoch and index)",
    "TRAIN.ENABLE": "whether tools/train_net.py trains at all",
    "TRAIN.AUTO_RESUME": "whether the run resumes",
    "TRAIN.CHECKPOINT_FILE": "the weights a fresh run starts from; a resumed run ignores it",
    "TRAIN.RESUME_CHANGED_CONFIG": "the switch that allows the other changes",
    "TRAIN.CHECKPOINT_PERIOD": "which epochs are saved; a new best is saved whatever the period",
    "TRAIN.CHECKPOINT_KEEP_LAST": "how many epoch checkpoints stay on disk",
    "TRAIN.LOG_PERIOD": "how often steps are logged",
    "TRAIN.TENSORBOARD": "logging only",
    "TRAIN.PROGRESS_BAR": "display only",
    "TEST": "the test after training reads the current config; tools/test_net.py can rerun it any time",
    "SEARCH.DERIVE": "what tools/search_net.py derives from the trained supernet, not how the supernet trains",
    "SEARCH.LATENCY": "the latency table of the derivation, measured after the supernet's training",
    "SEARCH.TRAIN_DERIVED": "whether the derived network is trained after the search",
}

Change = Tuple[object, object]  # (value the run started with, value now)


def is_neutral(key: str) -> bool:
    """Whether changing ``key`` (dotted) cannot change results (:data:`NEUTRAL_KEYS`)."""
    parts = key.split(".")
    return any(".".join(parts[:n]) in NEUTRAL_KEYS for n in range(1, len(parts) + 1))


def config_changes(started: CfgNode, now: CfgNode) -> Tuple[Dict[str, Change], Dict[str, Change]]:
    """``(result_changes, neutral_changes)``: every key whose value differs between the two
    configs, ``key -> (started, now)``, split by :func:`is_neutral`. A key only one config has
    (added to the defaults since) counts with ``None`` on the other side."""
    old, new = dict(flat_items(started)), dict(flat_items(now))
    changes = {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}
    result = {k: v for k, v in changes.items() if not is_neutral(k)}
    return result, {k: v for k, v in changes.items() if is_neutral(k)}


def flat_items(node: CfgNode, prefix: str = "") -> Iterator[Tuple[str, object]]:
    """``("GROUP.KEY", value)`` for every leaf of ``node``; tuples as lists (YAML has no tuples)."""
    for key, value in node.items():
        if isinstance(value, CfgNode):
            yield from flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", list(value) if isinstance(value, tuple) else value


def describe_changes(changes: Dict[str, Change]) -> str:
    """``"SOLVER.MAX_EPOCH 4 -> 6, DATA.TRAIN_LIST 'a.txt' -> 'b.txt'"``."""
    return ", ".join(f"{k} {v[0]!r} -> {v[1]!r}" for k, v in changes.items())
