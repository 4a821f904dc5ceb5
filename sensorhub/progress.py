"""A progress bar for long commands, shown only when stderr is a terminal (rich)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["track"]

T = TypeVar("T")


def track(items: Iterable[T], total: float, position: Callable[[T], float], description: str) -> Iterator[T]:
    """Yield ``items`` unchanged, with a transient progress bar on a terminal.

    Args:
        items: what to iterate over.
        total: the value ``position`` reaches at the end (e.g. seconds of data).
        position: how far an item is along (same unit as ``total``).
        description: the bar's label.
    """
    if not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            progress.update(task, completed=position(item))
            yield item
