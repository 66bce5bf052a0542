"""Importing group boundaries from a GeoJSON file: every feature checked, then all or nothing.

``fail`` (the default) imports nothing when any feature is unusable; ``skip`` leaves unusable
features out; ``repair`` mends what GEOS can mend (self-intersections, misplaced holes) and
skips the rest. Whatever is imported goes in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import geo
from blockwatch import groups
from blockwatch.db import Database
from blockwatch.domain import OPERATOR, GroupDraft

ON_INVALID = ("fail", "skip", "repair")


@dataclass
class ImportReport:
    """What an import did: ids imported, features repaired, features given a placeholder name
    (their name property was blank or missing), features skipped with reasons."""

    imported: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unnamed: list[tuple[str, str]] = field(default_factory=list)  # (feature label, name given)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (feature label, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)   # only with on_invalid="fail"


def import_groups(
    db: Database,
    path: str | Path,
    name_field: str,
    on_invalid: str = "fail",
    description_field: str | None = None,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> ImportReport:
    """Import every usable feature of a GeoJSON file as a group named by ``name_field``."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {', '.join(ON_INVALID)}")
    features = geo.read_geojson(path, strict=False)
    report = ImportReport()
    drafts = []
    for index, feature in progress(list(enumerate(features))):
        label = f"feature {index}" + (f" (id {feature.id!r})" if feature.id is not None else "")
        boundary, reason, repaired = _usable_boundary(feature, on_invalid)
        if reason is not None:
            (report.failed if on_invalid == "fail" else report.skipped).append((label, reason))
            continue
        if repaired:
            report.repaired.append(label)
        name = feature.properties.get(name_field)
        name = str(name).strip() if isinstance(name, str | int | float) else ""
        if not name:
            # Real files have blank names (unnamed islands, say): keep the boundary, say so.
            name = f"Unnamed ({label})"
            report.unnamed.append((label, name))
        description = feature.properties.get(description_field, "") if description_field else ""
        drafts.append(GroupDraft(
            name=name[:200], boundary=boundary,
            description=description if isinstance(description, str) else "",
        ))
    if report.failed:
        return report
    report.imported = groups.create_groups(db, OPERATOR, drafts)
    return report


def _usable_boundary(feature: geo.Feature, on_invalid: str):
    """(boundary, None, repaired) when usable, else (None, reason, False)."""
    geometry = feature.geometry
    if geometry is not None and geometry.geom_type not in ("Polygon", "MultiPolygon"):
        return None, f"a {geometry.geom_type} is not a boundary", False
    if not feature.problems:
        return geometry, None, False
    reason = "; ".join(str(problem) for problem in feature.problems)
    if on_invalid != "repair" or geometry is None:
        return None, reason, False
    try:
        mended = geo.repair(geometry)
    except geo.GeometryError as error:
        return None, f"{reason} (cannot repair: {error})", False
    if geo.validate(mended):
        return None, f"{reason} (repair left it invalid)", False
    return mended, None, True
