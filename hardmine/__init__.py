"""hardmine: hard-sample mining for PyTorch and Hugging Face training.

Record per-sample losses while training, decide when to mine (epoch N or a plateau), select the hard
samples, and re-plan the next epochs so they are drawn more often, with the epoch length unchanged.

The pipeline, one module a stage (``miner`` wires them): ``buffer`` (per-rank records and the gather),
``ledger`` (per-id scores), ``triggers`` (when), ``ids`` (which ids may be mined, where they sit in the
plan), ``guards`` (noise guards), ``selection`` (which), ``planner`` (next epoch's weights),
``sampler`` (the fixed-length plan), ``event`` / ``history`` (what each epoch decided), ``run_record``
(what ``save`` writes and ``hardmine report`` reads); ``categories`` / ``prior`` (the frequency prior the
planner multiplies with hardness). Around it: ``config`` (the YAML block),
``distributed`` (collectives), ``fusion`` (targets mined, auxiliary sources at fixed quotas),
``integrations.hf`` (the Hugging Face Trainer adapter, imported on demand), ``cli`` (``hardmine``).
"""

from __future__ import annotations

from hardmine._state import Stateful
from hardmine.buffer import RecordBuffer
from hardmine.categories import Categories
from hardmine.config import HardMiningConfig
from hardmine.event import MiningEvent
from hardmine.fusion import FusionDataset
from hardmine.guards import Cartography, Guard, Learnability, LossMixture, LossTail, Staleness
from hardmine.ledger import LedgerStats, LossLedger
from hardmine.miner import HardMiner
from hardmine.planner import Planner
from hardmine.prior import ClassBalanced, Prior, RepeatFactor
from hardmine.run_record import RunRecord
from hardmine.sampler import HardMiningSampler, PlanSampler
from hardmine.selection import Percentile, Selection, Selector, Threshold, TopK
from hardmine.triggers import EpochTrigger, PlateauTrigger, Trigger

__version__ = "0.1.0"

__all__ = [
    "Cartography",
    "Categories",
    "ClassBalanced",
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
    "PlanSampler",
    "Planner",
    "PlateauTrigger",
    "Prior",
    "RecordBuffer",
    "RepeatFactor",
    "RunRecord",
    "Selection",
    "Selector",
    "Staleness",
    "Stateful",
    "Threshold",
    "TopK",
    "Trigger",
    "__version__",
]
