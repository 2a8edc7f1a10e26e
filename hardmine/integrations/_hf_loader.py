"""The train DataLoader driven by the miner's sampler, whichever trainer built it.

The stock Trainer asks ``_get_train_sampler`` for its sampler; ms-swift's ``DataLoaderMixin`` does not: it
builds its own ``BatchSamplerShard`` over ``len(train_dataset)``. :func:`take_over` rebuilds such a loader
over the miner's sampler (sharded the way accelerate shards the stock one), keeping everything else
(collator, workers, the batches a resume skips). :func:`sampler_chain` and :func:`describe` say what drives
a loader, for the runtime guard's messages.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import BatchSampler, Sampler

__all__ = ["describe", "drives", "sampler_chain", "take_over"]

_LINKS = ("base_dataloader", "batch_sampler", "sampler")  # how loaders and batch samplers nest


def sampler_chain(loader: Any, depth: int = 8) -> list[Any]:
    """``loader`` and what it draws its indices from, outermost first (DataLoader > batch sampler > sampler)."""
    chain = [loader]
    while len(chain) < depth:
        inner = next((x for x in (getattr(chain[-1], k, None) for k in _LINKS) if x is not None), None)
        if inner is None or any(inner is seen for seen in chain):
            break
        chain.append(inner)
    return chain


def drives(loader: Any, sampler: Sampler[int]) -> bool:
    """Whether ``sampler`` is in ``loader``'s chain of index sources."""
    return any(x is sampler for x in sampler_chain(loader))


def describe(loader: Any) -> str:
    """``loader``'s chain of index sources by class, e.g. ``swift...DataLoaderShard > swift...BatchSamplerShard``."""
    return " > ".join(f"{type(x).__module__}.{type(x).__qualname__}" for x in sampler_chain(loader))


def _is_swift_shard(loader: Any) -> bool:
    """An ms-swift ``DataLoaderShard`` over ms-swift's own ``BatchSamplerShard`` (its non-sequence-parallel loader)."""
    inner = sampler_chain(loader)[1:]
    return (type(loader).__module__.startswith("swift.") and bool(inner)
            and type(inner[-1]).__module__.startswith("swift.") and type(inner[-1]).__name__ == "BatchSamplerShard")


def take_over(loader: Any, sampler: Sampler[int]) -> Any:
    """``loader`` when ``sampler`` drives it; an ms-swift loader rebuilt over ``sampler``; else ``loader`` unchanged.

    The rebuilt loader keeps ms-swift's batch size, ``drop_last``, data-parallel rank and world size (its
    ``BatchSamplerShard`` knows them), the batches a resume skips, and the DataLoader's own settings. Every
    rank iterates the whole global stream and keeps every world-size-th batch, as accelerate does for the
    stock Trainer. Anything else is left to the runtime guard, which refuses at the first step.
    """
    if drives(loader, sampler) or not _is_swift_shard(loader):
        return loader
    from accelerate.data_loader import BatchSamplerShard, SkipBatchSampler

    chain = sampler_chain(loader)
    theirs = chain[-1]
    batches: Any = BatchSampler(sampler, batch_size=int(theirs.batch_size), drop_last=bool(theirs.drop_last))
    if int(theirs.world_size) > 1:
        batches = BatchSamplerShard(batches, num_processes=int(theirs.world_size), process_index=int(theirs.rank),
                                    split_batches=False, even_batches=True)
    skip = next((int(x.skip_batches) for x in chain if isinstance(x, SkipBatchSampler)), 0)
    if skip:
        batches = SkipBatchSampler(batches, skip_batches=skip)
    params: dict[str, Any] = dict(batch_sampler=batches, collate_fn=loader.collate_fn, num_workers=loader.num_workers,
                                  pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn,
                                  persistent_workers=loader.persistent_workers, timeout=loader.timeout)
    if loader.num_workers > 0:
        params.update(prefetch_factor=loader.prefetch_factor, multiprocessing_context=loader.multiprocessing_context)
    return type(loader)(loader.dataset, device=getattr(loader, "device", None), **params)
