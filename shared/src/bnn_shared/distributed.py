"""Data-parallel training on PyTorch's own distributed engine, for the runner.

``torchrun --nproc-per-node N -m <package CLI> ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init_from_env` joins them in a
process group (gloo on the CPU, NCCL on GPUs). The runner then keeps the paper's meaning of a
batch: every process seeds the same seed (same initial weights, same shuffled order), each
takes its contiguous share of every global batch (:meth:`Group.shard`), the gradients are
summed across processes weighted by each share before every optimizer step
(:class:`SyncedOptimizer`), so one step is the step of the whole global batch; only rank 0
writes files, and the per-epoch training metrics are sample-weighted means over the ranks.

One process (no launcher) is the default and needs none of this: :data:`SINGLE` is a group of
one whose operations do nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from .errors import BnnError

__all__ = ["Group", "SINGLE", "SyncedOptimizer", "init_from_env"]


class Group:
    """The processes of one run: ``rank``, ``world_size`` and the few collectives it needs."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of a global batch (sizes differ by at most one)."""
        if not self.active:
            return indices
        return indices.tensor_split(self.world_size)[self.rank]

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the processes, in place."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def sum_weighted_(self, tensors: list[torch.Tensor], weight: float = 1.0) -> None:
        """Replace each tensor by the sum over the processes of ``weight * tensor``, in place
        and in one flat buffer (one collective for all of them)."""
        if not self.active or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        if weight != 1.0:
            flat.mul_(weight)
        self.all_reduce_sum_(flat)
        offset = 0
        for tensor in tensors:
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()

    def weighted_mean(self, values: Mapping[str, Any], weight: float) -> dict[str, Any]:
        """Means over the processes of the float ``values``, each weighted by ``weight``
        (its sample count); other values are rank 0's."""
        if not self.active:
            return dict(values)
        keys = [
            k for k, v in values.items() if isinstance(v, float | int) and not isinstance(v, bool)
        ]
        buffer = torch.tensor(
            [float(values[k]) * weight for k in keys] + [weight], dtype=torch.float64
        )
        self.all_reduce_sum_(buffer)
        total = buffer[-1].item()
        reduced = dict(values)
        for index, key in enumerate(keys):
            mean = buffer[index].item() / total if total else 0.0
            reduced[key] = type(values[key])(mean) if isinstance(values[key], float) else mean
        return reduced

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the process group, all processes together: a process that tears down its
        connections while another still uses them can abort at exit (gloo)."""
        if self.active and dist.is_initialized():
            try:
                dist.barrier()
            finally:
                dist.destroy_process_group()


#: The group of a run without a launcher.
SINGLE = Group()


def init_from_env(device: torch.device) -> Group:
    """Join the process group that ``torchrun`` describes in the environment, or return
    :data:`SINGLE` when there is none (``WORLD_SIZE`` unset or 1).

    Raises:
        BnnError: the rendezvous fails (the message says what torchrun needs).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        # torch.distributed.nn.functional takes the default group as its functions' default
        # argument when it is first imported (creating an optimizer imports it); imported
        # after the group exists, it keeps the group alive past destroy_process_group, and
        # gloo's worker threads then abort the process at exit. Import it while there is none.
        import torch.distributed.nn.functional  # noqa: F401

        try:
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        except (RuntimeError, ValueError) as exc:
            raise BnnError(
                f"cannot join the {world_size} processes ({backend}): {exc}; start the "
                "command with torchrun --nproc-per-node N"
            ) from exc
    return Group(rank, world_size, local_rank)


class SyncedOptimizer:
    """An optimizer whose ``step`` first sums the gradients of all processes.

    Each process's gradients are multiplied by its share of the global batch (``weight``:
    local samples / global samples, set per batch by the runner's ``batches``) when the
    loss is a mean over the batch (``reduction="mean"``), and summed as they are when the
    loss is a sum over the batch (``reduction="sum"``); the result is the gradient of the
    whole global batch, as one process would compute it. Everything else (``zero_grad``,
    ``param_groups``, ``state_dict``, ...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer: Any, group: Group, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise BnnError(f"gradient reduction must be 'mean' or 'sum', got {reduction!r}")
        self.optimizer = optimizer
        self.group = group
        self.reduction = reduction
        self.weight = 1.0

    def synchronize(self) -> None:
        """Sum the gradients over the processes (weighted), in one flat buffer."""
        grads = [
            p.grad
            for group in self.optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        weight = self.weight if self.reduction == "mean" else 1.0
        self.group.sum_weighted_(grads, weight)

    def step(self, *args: Any, **kwargs: Any) -> Any:
        self.synchronize()
        return self.optimizer.step(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)
