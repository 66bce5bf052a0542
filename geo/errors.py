"""The errors and problem reports `geo` gives back to callers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason a geometry is unusable, with where it is.

    ``code`` is a stable machine-readable name (``self-intersection``, ``too-few-points``,
    ``unclosed-ring``, ``invalid-coordinate``, ``out-of-range``, ``too-many-vertices``,
    ``antimeridian``, ...); ``message`` is for people; ``location`` is ``(lon, lat)`` when the
    problem has a place; ``path`` says which part (``"polygon 1, ring 0"``) when it matters.

    >>> str(Problem("unclosed-ring", "ring is not closed", (-122.3, 47.6), "ring 0"))
    'ring 0: ring is not closed at (-122.3, 47.6)'
    """

    code: str
    message: str
    location: tuple[float, float] | None = None
    path: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.location is not None:
            text += f" at ({_coord(self.location[0])}, {_coord(self.location[1])})"
        return text


def _coord(value: float) -> str:
    return repr(round(value, 7))


class GeometryError(ValueError):
    """A geometry (or a GeoJSON document) that cannot be used as given.

    ``problems`` lists every :class:`Problem` found; ``feature`` names the feature (its id, or its
    index in the collection) when the geometry came from one.
    """

    def __init__(
        self,
        message: str,
        problems: list[Problem] | None = None,
        feature: str | int | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
        self.feature = feature
