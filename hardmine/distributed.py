"""The few ``torch.distributed`` collectives hardmine needs, as no-ops without a process group.

Every function here is a collective when a process group is initialised: call it on every rank,
never behind ``if rank == 0``. gloo gets CPU tensors, NCCL gets tensors on the current CUDA device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["all_gather_concat", "all_gather_concat_sizes", "barrier", "get_rank", "get_world_size", "is_initialized"]


def is_initialized() -> bool:
    """Whether a default process group exists (and there is more than nothing to talk to)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_concat(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Concatenate each array across ranks in rank order; arrays of one rank share a length.

    Each array is 1-D with an 8-byte dtype (int64 or float64); lengths may differ between ranks.
    Two collectives: one for the lengths, one for the padded payload. Single-process: the arrays
    themselves, not copies.
    """
    return _gather(arrays)[0]


def all_gather_concat_sizes(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """:func:`all_gather_concat`, and how many entries each rank contributed (in rank order)."""
    return _gather(arrays)


def _gather(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    if not is_initialized() or get_world_size() == 1:
        return list(arrays), [int(arrays[0].size) if arrays else 0]
    for a in arrays:
        if a.ndim != 1 or a.itemsize != 8 or a.size != arrays[0].size:
            raise ValueError("all_gather_concat takes 1-D 8-byte arrays of one length per rank")
    device = _device()
    world = get_world_size()
    n = arrays[0].size
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([n], dtype=torch.int64, device=device))
    sizes_l = [int(s.item()) for s in sizes]
    longest = max(sizes_l)
    payload = np.zeros((len(arrays), longest), dtype=np.int64)
    for row, a in enumerate(arrays):
        payload[row, :n] = a.view(np.int64)
    out = [torch.empty((len(arrays), longest), dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(out, torch.from_numpy(payload).to(device))
    gathered = [t.cpu().numpy() for t in out]
    joined = [np.concatenate([gathered[r][row, : sizes_l[r]] for r in range(world)]).view(a.dtype)
              for row, a in enumerate(arrays)]
    return joined, sizes_l


def barrier() -> None:
    if is_initialized():
        dist.barrier()
