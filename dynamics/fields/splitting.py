"""Operator splitting: a field that fixed-step schemes integrate part by part.

``LieTrotter(first, second)`` is the field first + second (paper (2.8): attention plus
feed-forward); a fixed-step scheme advances it by one step of ``first`` followed by one
step of ``second`` (a transformer block: attention sublayer, then MLP sublayer).
Adaptive methods integrate the sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attention.array_api import Array
from dynamics.fields.base import Field


@dataclass(frozen=True)
class LieTrotter(Field):
    first: Field
    second: Field

    def __post_init__(self) -> None:
        if not (isinstance(self.first, Field) and isinstance(self.second, Field)):
            raise TypeError("a splitting is made of two fields (dynamics.Field)")
        if type(self.first.space) is not type(self.second.space):
            raise ValueError("both parts of a splitting must live on the same space")

    @property
    def parts(self) -> tuple[Field, Field]:  # type: ignore[override]
        return (self.first, self.second)

    @property
    def space(self):
        return self.first.space

    @property
    def time_dependent(self) -> bool:  # type: ignore[override]
        return any(p.time_dependent for p in self.parts)

    def check(self, x: Array) -> None:
        for p in self.parts:
            p.check(x)

    def on(self, like: Array) -> LieTrotter:
        return LieTrotter(*(p.on(like) for p in self.parts))

    def __call__(self, t: Any, x: Array) -> Array:
        return self.first(t, x) + self.second(t, x)
