"""Fusion: target sources (mined) and auxiliary sources (fixed per-epoch quotas) in one index space.

- :class:`FusionDataset` (``_dataset``): the map over the pools, items tagged with ``sample_id``/``source``.
- :class:`FusionSampler` (``_sampler``): the per-epoch plan, targets by mining weight, auxiliaries at quotas.
- ``_layout``: the flat index space, the sample-id codes and every source-name check.
- :class:`FusionConfig` (``_config``): the ``custom.fusion`` YAML block.

See ``docs/UNIFIED_FUSION_DATASET.md``.
"""

from __future__ import annotations

from hardmine.fusion._config import AuxiliaryConfig, FusionConfig, TargetConfig
from hardmine.fusion._dataset import FusionDataset, FusionEvalView, Pool
from hardmine.fusion._layout import FusionLayout, decode_ids
from hardmine.fusion._sampler import FusionSampler

__all__ = ["AuxiliaryConfig", "FusionConfig", "FusionDataset", "FusionEvalView", "FusionLayout", "FusionSampler",
           "Pool", "TargetConfig", "decode_ids"]
