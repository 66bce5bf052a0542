"""Loading the demo data in ``fixtures/``: the made-up groups, an alert of every category, and
the safety tips (the project's checkout holds them; they are not installed with the package).

Loading twice on the same day changes nothing: ids are derived from the fixtures (and, for
alerts, the date), and services that write are idempotent on them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import shapely

import geo
from blockwatch import accounts, alerts, groups, tips
from blockwatch.db import Database
from blockwatch.domain import OPERATOR, AlertDraft, GroupDraft, NotFound

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_NAMESPACE = uuid.UUID("0b6f3a1e-7c55-4d7e-a0a8-5e1f3f3c2d10")
DEMO_COORDINATOR = "Demo Captain"

def _group_exists(db: Database, group_id: str) -> bool:
    try:
        groups.get_group(db, group_id)
    except NotFound:
        return False
    return True


def load_fixtures(db: Database, today: datetime | None = None) -> dict[str, int]:
    """Load every fixture; returns how many groups, alerts and tip translations were written."""
    today = today or datetime.now(UTC)
    features = geo.read_geojson(FIXTURES / "demo_groups.geojson")
    drafts = [
        GroupDraft(
            id=str(uuid.uuid5(_NAMESPACE, f"group/{feature.id}")),
            name=feature.properties["name"], boundary=feature.geometry,
            description=feature.properties.get("description", ""),
            languages=tuple(feature.properties.get("languages", ["en"])),
            meeting_info=feature.properties.get("meeting_info", ""),
        )
        for feature in features
    ]
    missing = [draft for draft in drafts if not _group_exists(db, draft.id)]
    if missing:
        groups.create_groups(db, OPERATOR, missing)
    written_groups = len(missing)
    group_ids = [str(uuid.uuid5(_NAMESPACE, f"group/{f.id}")) for f in features]
    captain = accounts.ensure_account(db, DEMO_COORDINATOR)
    for group_id in group_ids:
        accounts.set_membership(db, captain, group_id, "coordinator")
    author = accounts.actor_for(db, captain)
    written_alerts = 0
    demo_alerts = json.loads((FIXTURES / "demo_alerts.json").read_text(encoding="utf-8"))
    for n, demo in enumerate(demo_alerts):
        category, title, severity, body = (
            demo["category"], demo["title"], demo["severity"], demo["body"]
        )
        feature = features[(n * 7) % len(features)]
        point = shapely.Polygon(feature.geometry.exterior).point_on_surface()
        _, created = alerts.post_alert(db, author, group_ids[(n * 7) % len(features)], AlertDraft(
            id=str(uuid.uuid5(_NAMESPACE, f"alert/{category}/{today.date()}")),
            category=category, title=title, body=body, severity=severity,
            urgency="expected", certainty="observed", location=(point.x, point.y),
        ))
        written_alerts += created
    tip_records = json.loads((FIXTURES / "safety_tips.json").read_text(encoding="utf-8"))
    return {
        "groups": written_groups,
        "alerts": written_alerts,
        "tips": tips.upsert_tips(db, tip_records),
    }
