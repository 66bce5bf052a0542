"""What a replica holds, as both the server and the client describe it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Tips in English are always in scope: the fallback wherever a translation is missing.
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class Area:
    """A circle: the groups whose boundary intersects it are in scope."""

    lon: float
    lat: float
    radius_m: float


@dataclass(frozen=True)
class Scope:
    """Groups intersecting ``area``, plus ``group_ids``, plus the reader's own groups; their
    alerts; tips in ``languages`` (and English)."""

    area: Area | None = None
    group_ids: tuple[str, ...] = ()
    languages: tuple[str, ...] = (FALLBACK_LANGUAGE,)

    def as_json(self) -> dict[str, Any]:
        """The ``scope`` object of a pull request."""
        area = None
        if self.area is not None:
            area = {"lat": self.area.lat, "lon": self.area.lon, "radius_m": self.area.radius_m}
        return {"area": area, "group_ids": list(self.group_ids),
                "languages": list(self.languages)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Scope:
        area = value.get("area")
        return cls(
            area=Area(area["lon"], area["lat"], area["radius_m"]) if area else None,
            group_ids=tuple(value.get("group_ids", ())),
            languages=tuple(value.get("languages", (FALLBACK_LANGUAGE,))),
        )
