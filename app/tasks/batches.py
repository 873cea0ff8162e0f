"""Inputs in batches of similar length, for answering many at once in process (``evaluate``, bulk
jobs, training's selection): padding to the longest of a batch costs little when they are alike."""

from __future__ import annotations

import sys
from typing import Iterator, Sequence

from tqdm import tqdm


def length_batches(lengths: Sequence[int], batch_size: int, desc: str | None = None) -> Iterator[list[int]]:
    """Indices into ``lengths`` in batches of similar length; a progress bar named ``desc`` when given."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", file=sys.stderr, disable=desc is None):
        yield order[start : start + batch_size]
