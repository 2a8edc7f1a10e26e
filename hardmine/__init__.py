"""hardmine: hard-sample mining for PyTorch and Hugging Face training.

Record per-sample losses while training, decide when to mine (epoch N or a plateau), select the hard
samples, and re-plan the next epochs so they are drawn more often, with the epoch length unchanged.

Layout: ``ledger`` (per-id scores), ``triggers`` (when), ``selection`` (which), ``sampler`` (the
fixed-length plan), ``miner`` (the orchestrator), ``config`` (the YAML block), ``guards`` (noise
guards), ``distributed`` (collectives), ``fusion`` (targets mined, auxiliary sources at fixed quotas),
``integrations.hf`` (the Hugging Face Trainer adapter, imported on demand), ``cli`` (``hardmine report``).
"""

from __future__ import annotations

from hardmine.config import HardMiningConfig
from hardmine.fusion import FusionDataset
from hardmine.guards import Guard, Learnability, LossMixture, LossTail, Staleness
from hardmine.ledger import LedgerStats, LossLedger
from hardmine.miner import HardMiner, MiningEvent
from hardmine.sampler import HardMiningSampler
from hardmine.selection import Percentile, Selection, Selector, Threshold, TopK
from hardmine.triggers import EpochTrigger, PlateauTrigger, Trigger

__version__ = "0.1.0"

__all__ = [
    "EpochTrigger",
    "FusionDataset",
    "Guard",
    "HardMiner",
    "HardMiningConfig",
    "HardMiningSampler",
    "LedgerStats",
    "Learnability",
    "LossLedger",
    "LossMixture",
    "LossTail",
    "MiningEvent",
    "Percentile",
    "PlateauTrigger",
    "Selection",
    "Selector",
    "Staleness",
    "Threshold",
    "TopK",
    "Trigger",
    "__version__",
]
