"""The order in which price sources are asked, in a module of its own.

Plugin modules import `PriceRank` when they are discovered, so it lives apart
from the data model, whose attrs classes take milliseconds to create.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["PriceRank"]


class PriceRank(IntEnum):
    """The position of a price source in the lookup order; higher ranks come first.

    Prices passed to a tracker always come before every rank.
    """

    ORGANIZATION = 200
    """An organisation's own price list, above the provider plugins' tables."""

    PROVIDER = 100
    """A provider plugin's bundled price table."""

    FALLBACK = 0
    """A broad public database, asked only when the provider table has no price."""
