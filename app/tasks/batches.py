"""Inputs in batches of similar length, for answering many at once in process (``evaluate``, bulk
jobs, training's selection): padding to the longest of a batch costs little when they are alike."""

from __future__ import annotations

import sys
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def length_batches(lengths: Sequence[int], batch_size: int, desc: str | None = None) -> Iterator[list[int]]:
    """Indices into ``lengths`` in batches of similar length; a progress bar named ``desc`` when given."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", file=sys.stderr, disable=desc is None):
        yield order[start : start + batch_size]


def map_by_length(
    function: Callable[[list[Item]], Sequence[Result]],
    items: Sequence[Item],
    lengths: Sequence[int],
    batch_size: int,
    desc: str | None = None,
) -> list[Result]:
    """``function`` (a batch of items → one result each) over ``items`` in batches of similar
    ``lengths`` (:func:`length_batches`); the results in the order of ``items``."""
    results: list = [None] * len(items)
    for batch in length_batches(lengths, batch_size, desc):
        for i, result in zip(batch, function([items[i] for i in batch])):
            results[i] = result
    return results
