"""Core scalar types shared by every contract: ids, money, sizes.

Money is integer cents and nothing else: a float price is refused at the edge
(strict ints), so no rounding can ever move value.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
"""A caller-chosen business id (listing, agent, principal, deal, market)."""

Cents = Annotated[int, Field(strict=True)]
"""An amount of money in minor units (cents). Sign is checked by the domain."""

PositiveCents = Annotated[int, Field(strict=True, gt=0)]
Grams = Annotated[int, Field(strict=True)]
Millimetres = Annotated[int, Field(strict=True)]

CURRENCY: Final = "USD"
MAX_PRICE_CENTS = 10_000_000_00
"""Sanity bound on any price: $10M. Above it a price is an attack or a typo."""
