"""Adapters for training frameworks.

Importing this package imports no framework: ``hardmine.integrations.hf`` loads transformers only when
one of its names is used (``from hardmine.integrations.hf import HardMiningTrainer``).
"""

from __future__ import annotations

__all__: list[str] = []
