"""torchrun / DDP helpers: process-group setup, rank queries, reductions, rank-0-only work.

Every helper also works without an initialised process group (a single process), so the
loops call them unconditionally.
"""
import logging
import os
from typing import Any, Callable, List, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..config import ConfigError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def launch_rank() -> int:
    """This process's global rank, also before the process group is joined (torchrun's RANK)
    or after it is closed: which process of a launch reports what all of them meet."""
    if is_dist():
        return dist.get_rank()
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def init_distributed(device_kind: str) -> bool:
    """Joins the torchrun process group (NCCL for CUDA, gloo for the CPU); True when distributed.

    Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set by torchrun.
    """
    if is_dist() or not launched_by_torchrun():
        return is_dist()
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


def shutdown_distributed() -> None:
    if is_dist():
        dist.destroy_process_group()


def _cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"DEVICE: 'cuda' requested but no GPU is usable here (torch {torch.__version__}, "
                          f"{build}); use DEVICE cpu, or auto (the GPU when there is one)")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


# cfg.DEVICE -> the device; under torchrun each rank takes its GPU (LOCAL_RANK).
DEVICES = {
    "cpu": lambda: torch.device("cpu"),
    "cuda": _cuda_device,
    "auto": lambda: _cuda_device() if torch.cuda.is_available() else torch.device("cpu"),
}


def resolve_device(name: str) -> torch.device:
    """``cfg.DEVICE`` ("cpu", "cuda", "auto") to a device (see :data:`DEVICES`)."""
    if name not in DEVICES:
        raise ConfigError(f"DEVICE: {name!r} is not one of {sorted(DEVICES)}")
    return DEVICES[name]()


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over ranks (a new tensor; the input is left as it is)."""
    out = values.detach().clone()
    if is_dist():
        # NCCL reduces GPU tensors only; gloo reduces CPU tensors.
        on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        buf = out.to(on)
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        out = buf.to(values.device)
    return out


def all_gather_objects(obj: Any) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (pickled; use for small objects)."""
    if not is_dist():
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 alone; its result on every rank, or the exception it raised
    raised on every rank (so no rank waits for one that failed). Results and errors must pickle."""
    if not is_dist():
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as e:  # every rank re-raises it below
            error = e
    result, error = broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP-wraps ``model`` when distributed; SyncBN only on CUDA (torch has no CPU SyncBN).

    Single-process runs get ``model`` itself: SyncBN would change nothing there.
    """
    if not is_dist():
        return model
    if sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_bn:
        logger.warning("TRAIN.SYNC_BN ignored on the CPU: torch's SyncBatchNorm needs CUDA")
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
