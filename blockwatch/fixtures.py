"""Demo data: the made-up groups, an alert of every category, and the safety tips.

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
from blockwatch.domain import CATEGORIES, OPERATOR, AlertDraft, GroupDraft, NotFound

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_NAMESPACE = uuid.UUID("0b6f3a1e-7c55-4d7e-a0a8-5e1f3f3c2d10")
DEMO_COORDINATOR = "Demo Captain"

_ALERT_TEXTS = {
    "burglary": ("Back-door break-in overnight", "moderate",
                 "A house on the block was entered through an unlocked back door between 1 and "
                 "4 am. Police have a report. Check your back doors and gates tonight."),
    "vehicle-prowl": ("Car windows smashed on the street", "minor",
                      "Three parked cars had windows broken; bags left on seats were taken."),
    "theft": ("Packages taken from porches", "minor",
              "Several deliveries disappeared this afternoon. Ask for signature or a locker."),
    "vandalism": ("Graffiti on the retaining wall", "minor",
                  "Reported to the city's graffiti line; the owner has been told."),
    "suspicious-activity": ("Person trying car door handles", "moderate",
                            "Seen around 10 pm going car to car. Call 911 if you see it happen."),
    "violent-crime": ("Robbery near the bus stop", "severe",
                      "A person was robbed at knifepoint; police are searching the area. "
                      "Avoid the stop this evening and walk with others."),
    "fraud-scam": ("Callers pretending to be the utility", "moderate",
                   "Neighbours got calls demanding gift cards to avoid a shut-off. "
                   "The utility never asks for gift cards. Hang up."),
    "fire": ("Garage fire: smoke in the alley", "severe",
             "Fire crews are on scene. Keep windows closed and stay out of the alley."),
    "traffic": ("Street closed for water main repair", "minor",
                "Closed between the two avenues until 6 pm; use the next street over."),
    "missing-person": ("Missing: older neighbour with memory loss", "severe",
                       "Last seen walking toward the park in a blue coat. Call 911 if seen."),
    "lost-pet": ("Lost grey cat, answers to Miso", "minor",
                 "Indoor cat, got out through a window. Please check garages and sheds."),
    "weather": ("Windstorm tonight: secure bins and furniture", "moderate",
                "Gusts over 50 mph expected after 8 pm; expect power cuts."),
    "other": ("Block potluck moved to Sunday", "minor",
              "Same place, same time, one day later because of the windstorm."),
}


def load_fixtures(db: Database, today: datetime | None = None) -> dict[str, int]:
    """Load every fixture; returns how many groups, alerts and tip translations were written."""
    today = today or datetime.now(UTC)
    features = geo.read_geojson(FIXTURES / "demo_groups.geojson")
    written_groups = 0
    for feature in features:
        group_id = str(uuid.uuid5(_NAMESPACE, f"group/{feature.id}"))
        try:
            groups.get_group(db, group_id)
            continue
        except NotFound:
            pass
        properties = feature.properties
        groups.create_group(db, OPERATOR, GroupDraft(
            id=group_id, name=properties["name"], boundary=feature.geometry,
            description=properties.get("description", ""),
            languages=tuple(properties.get("languages", ["en"])),
            meeting_info=properties.get("meeting_info", ""),
        ))
        written_groups += 1
    group_ids = [str(uuid.uuid5(_NAMESPACE, f"group/{f.id}")) for f in features]
    captain = accounts.ensure_account(db, DEMO_COORDINATOR)
    for group_id in group_ids:
        accounts.set_membership(db, captain, group_id, "coordinator")
    author = accounts.actor_for(db, captain)
    written_alerts = 0
    for n, category in enumerate(CATEGORIES):
        title, severity, body = _ALERT_TEXTS[category]
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
