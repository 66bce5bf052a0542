"""CAP 1.2 rendering of alerts: schema-valid, spec time format, areas, escaping, Cancel."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import shapely
import xmlschema

from blockwatch.capxml import alert_to_cap
from blockwatch.domain import CATEGORIES, Alert, Author, Group
from geo.cap import CAP_NAMESPACE, parse_circle, parse_polygon

NS = {"cap": CAP_NAMESPACE}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
TIME_TAGS = ("sent", "effective", "onset", "expires")
SENT = datetime(2024, 3, 9, 18, 4, 5, 987654, tzinfo=UTC)
SPECIAL = "Café ñ 中文 <b>bold</b> & \"quoted\" 'single' ]]> done"

# Two squares in Seattle's Capitol Hill; the second has a square hole.
SQUARE_A = shapely.box(-122.325, 47.610, -122.315, 47.620)
SQUARE_B = shapely.Polygon(
    [(-122.310, 47.610), (-122.300, 47.610), (-122.300, 47.620), (-122.310, 47.620)],
    holes=[[(-122.307, 47.613), (-122.303, 47.613), (-122.303, 47.617), (-122.307, 47.617)]],
)
BOUNDARY = shapely.MultiPolygon([SQUARE_A, SQUARE_B])
GROUP = Group(
    id="3f1c2b9e-0000-4000-8000-000000000001",
    name="Capitol Hill & Pike/Pine <North>",
    description="",
    boundary=BOUNDARY,
    centroid=(BOUNDARY.centroid.x, BOUNDARY.centroid.y),
    bbox=BOUNDARY.bounds,
    area_m2=1.0,
    languages=("en",),
    meeting_info="",
    member_count=3,
    version=7,
    updated_at=SENT,
)
ACTIVE_EXACT = Alert(
    id="7b0d6a1e-1111-4000-8000-000000000002",
    group_id=GROUP.id,
    category="vehicle-prowl",
    severity="moderate",
    urgency="immediate",
    certainty="observed",
    title="Car windows smashed on 14th Ave",
    body="Three cars on the east side of the block.",
    location=(-122.31812, 47.61234),
    location_exact=True,
    sent_at=SENT,
    expires_at=SENT + timedelta(hours=24),
    status="active",
    author=Author(id="acc-1", display_name="Captain Jo"),
    version=1,
)
ACTIVE_SNAPPED = replace(
    ACTIVE_EXACT,
    id="7b0d6a1e-1111-4000-8000-000000000003",
    location=(-122.3175, 47.6125),
    location_exact=False,
    author=Author(id=None, display_name=""),
    body="",
)
CANCELLED = replace(
    ACTIVE_EXACT,
    id="7b0d6a1e-1111-4000-8000-000000000004",
    category="missing-person",
    severity="severe",
    urgency="expected",
    certainty="likely",
    location=None,
    location_exact=False,
    status="cancelled",
)
SPECIAL_TEXT = replace(
    ACTIVE_EXACT,
    id="7b0d6a1e-1111-4000-8000-000000000005",
    category="fraud-scam",
    title=SPECIAL,
    body=f"{SPECIAL}\nsecond line",
    author=Author(id="acc-2", display_name="Zoë <admin> & co"),
)
ALERTS = {
    "active-exact": ACTIVE_EXACT,
    "active-snapped": ACTIVE_SNAPPED,
    "cancelled": CANCELLED,
    "special-text": SPECIAL_TEXT,
}


@pytest.fixture(scope="module")
def schema(shared_data):
    return xmlschema.XMLSchema(str(shared_data / "cap" / "CAP-v1.2.xsd"))


def _text(root: ET.Element, path: str) -> str | None:
    element = root.find(path, NS)
    return None if element is None else element.text


def test_validator_accepts_the_spec_example(schema, shared_data):
    example = shared_data / "cap" / "oasis_cap12_spec_example2.xml"
    schema.validate(str(example))
    assert schema.is_valid(str(example))


def test_validator_rejects_a_z_time(schema):
    doc = alert_to_cap(ACTIVE_EXACT, GROUP).replace(b"+00:00</sent>", b"Z</sent>", 1)
    assert not schema.is_valid(doc.decode())


@pytest.mark.parametrize("name", ALERTS)
def test_document_is_schema_valid(schema, name):
    doc = alert_to_cap(ALERTS[name], GROUP)
    assert doc.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    schema.validate(doc.decode("utf-8"))


@pytest.mark.parametrize("name", ALERTS)
def test_default_namespace_without_prefixes(name):
    doc = alert_to_cap(ALERTS[name], GROUP).decode()
    assert f'<alert xmlns="{CAP_NAMESPACE}">' in doc
    assert "ns0:" not in doc
    assert not re.search(r"</?\w+:", doc)


@pytest.mark.parametrize("name", ALERTS)
def test_times_follow_the_spec_pattern(name):
    alert = ALERTS[name]
    root = ET.fromstring(alert_to_cap(alert, GROUP))
    times = [e.text for tag in TIME_TAGS for e in root.iter(f"{{{CAP_NAMESPACE}}}{tag}")]
    assert len(times) == 2  # sent, expires
    for text in times:
        assert "Z" not in text
        assert TIME_RE.match(text), text
    assert _text(root, "cap:sent") == "2024-03-09T18:04:05+00:00"
    assert _text(root, "cap:info/cap:expires") == "2024-03-10T18:04:05+00:00"


def test_non_utc_times_are_converted_to_utc():
    pacific = timezone(timedelta(hours=-8))
    alert = replace(ACTIVE_EXACT, sent_at=datetime(2024, 3, 9, 10, 4, 5, tzinfo=pacific))
    root = ET.fromstring(alert_to_cap(alert, GROUP))
    assert _text(root, "cap:sent") == "2024-03-09T18:04:05+00:00"


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        alert_to_cap(replace(ACTIVE_EXACT, sent_at=SENT.replace(tzinfo=None)), GROUP)


@pytest.mark.parametrize("name", ALERTS)
def test_one_polygon_per_boundary_polygon_exterior_only(name):
    root = ET.fromstring(alert_to_cap(ALERTS[name], GROUP))
    areas = root.findall("cap:info/cap:area", NS)
    assert len(areas) == 1
    assert _text(areas[0], "cap:areaDesc") == GROUP.name
    texts = [e.text for e in areas[0].findall("cap:polygon", NS)]
    assert len(texts) == len(BOUNDARY.geoms) == 2
    for text, original in zip(texts, BOUNDARY.geoms, strict=True):
        pairs = text.split()
        assert pairs[0] == pairs[-1]
        for pair in pairs:
            lat, lon = (float(v) for v in pair.split(","))
            assert 47 < lat < 48 and -123 < lon < -122  # lat first
        parsed = parse_polygon(text)
        assert not parsed.interiors
        assert list(parsed.exterior.coords) == list(original.exterior.coords)


def test_single_polygon_boundary():
    group = replace(GROUP, boundary=SQUARE_A)
    root = ET.fromstring(alert_to_cap(ACTIVE_EXACT, group))
    texts = [e.text for e in root.findall("cap:info/cap:area/cap:polygon", NS)]
    assert len(texts) == 1
    assert parse_polygon(texts[0]).equals(SQUARE_A)


@pytest.mark.parametrize(
    ("name", "radius"),
    [("active-exact", "0"), ("active-snapped", "0.11"), ("cancelled", None)],
)
def test_circle_at_location(name, radius):
    alert = ALERTS[name]
    root = ET.fromstring(alert_to_cap(alert, GROUP))
    circles = [e.text for e in root.findall("cap:info/cap:area/cap:circle", NS)]
    if radius is None:
        assert circles == []
        return
    assert len(circles) == 1
    centre, written_radius = circles[0].split()
    assert written_radius == radius
    lat, lon = (float(v) for v in centre.split(","))
    assert (lon, lat) == alert.location
    circle = parse_circle(circles[0])
    assert (circle.lon, circle.lat) == alert.location


def test_message_header_of_an_alert():
    root = ET.fromstring(alert_to_cap(ACTIVE_EXACT, GROUP, sender="bw@example.org"))
    assert root.tag == f"{{{CAP_NAMESPACE}}}alert"
    assert _text(root, "cap:identifier") == ACTIVE_EXACT.id
    assert _text(root, "cap:sender") == "bw@example.org"
    assert _text(root, "cap:status") == "Actual"
    assert _text(root, "cap:msgType") == "Alert"
    assert _text(root, "cap:scope") == "Public"
    assert root.find("cap:references", NS) is None


def test_expired_alert_is_still_an_alert():
    root = ET.fromstring(alert_to_cap(replace(ACTIVE_EXACT, status="expired"), GROUP))
    assert _text(root, "cap:msgType") == "Alert"


def test_cancel_references_the_original(schema):
    doc = alert_to_cap(CANCELLED, GROUP, sender="bw@example.org")
    schema.validate(doc.decode())
    root = ET.fromstring(doc)
    assert _text(root, "cap:msgType") == "Cancel"
    assert _text(root, "cap:identifier") == f"{CANCELLED.id}-cancel"
    assert _text(root, "cap:references") == (
        f"bw@example.org,{CANCELLED.id},2024-03-09T18:04:05+00:00"
    )


def test_info_values_are_capitalised_and_mapped():
    root = ET.fromstring(alert_to_cap(ACTIVE_EXACT, GROUP, language="fr-CA"))
    info = root.find("cap:info", NS)
    assert _text(info, "cap:language") == "fr-CA"
    assert _text(info, "cap:category") == "Security"
    assert _text(info, "cap:event") == "Vehicle prowl"
    assert _text(info, "cap:urgency") == "Immediate"
    assert _text(info, "cap:severity") == "Moderate"
    assert _text(info, "cap:certainty") == "Observed"
    assert _text(info, "cap:senderName") == "Captain Jo"
    assert _text(info, "cap:headline") == ACTIVE_EXACT.title
    assert _text(info, "cap:description") == ACTIVE_EXACT.body
    assert _text(info, "cap:parameter/cap:valueName") == "blockwatch:group_id"
    assert _text(info, "cap:parameter/cap:value") == GROUP.id

    cancelled = ET.fromstring(alert_to_cap(CANCELLED, GROUP)).find("cap:info", NS)
    assert _text(cancelled, "cap:category") == "Rescue"
    assert _text(cancelled, "cap:event") == "Missing person"
    assert _text(cancelled, "cap:urgency") == "Expected"
    assert _text(cancelled, "cap:severity") == "Severe"
    assert _text(cancelled, "cap:certainty") == "Likely"


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("burglary", "Security"),
        ("vehicle-prowl", "Security"),
        ("theft", "Security"),
        ("vandalism", "Security"),
        ("suspicious-activity", "Security"),
        ("fraud-scam", "Security"),
        ("violent-crime", "Safety"),
        ("fire", "Fire"),
        ("traffic", "Transport"),
        ("missing-person", "Rescue"),
        ("weather", "Met"),
        ("lost-pet", "Other"),
        ("other", "Other"),
    ],
)
def test_category_mapping(schema, category, expected):
    doc = alert_to_cap(replace(ACTIVE_EXACT, category=category), GROUP)
    schema.validate(doc.decode())
    assert _text(ET.fromstring(doc), "cap:info/cap:category") == expected


def test_every_category_is_mapped():
    for category in CATEGORIES:
        alert_to_cap(replace(ACTIVE_EXACT, category=category), GROUP)


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("severity", ("extreme", "severe", "moderate", "minor", "unknown")),
        ("urgency", ("immediate", "expected", "future", "past", "unknown")),
        ("certainty", ("observed", "likely", "possible", "unlikely", "unknown")),
    ],
)
def test_every_value_is_capitalised_and_valid(schema, field, values):
    for value in values:
        doc = alert_to_cap(replace(ACTIVE_EXACT, **{field: value}), GROUP)
        schema.validate(doc.decode())
        assert _text(ET.fromstring(doc), f"cap:info/cap:{field}") == value.capitalize()


def test_special_characters_round_trip(schema):
    doc = alert_to_cap(SPECIAL_TEXT, GROUP)
    schema.validate(doc.decode("utf-8"))
    assert "Café ñ 中文".encode() in doc  # written as UTF-8, not as character references
    assert b"<b>" not in doc
    root = ET.fromstring(doc)
    assert _text(root, "cap:info/cap:headline") == SPECIAL
    assert _text(root, "cap:info/cap:description") == SPECIAL_TEXT.body
    assert _text(root, "cap:info/cap:senderName") == "Zoë <admin> & co"
    assert _text(root, "cap:info/cap:area/cap:areaDesc") == GROUP.name


def test_characters_xml_cannot_hold_are_dropped(schema):
    alert = replace(ACTIVE_EXACT, title="bell\x07 and nul\x00 gone", body="tab\tkept")
    doc = alert_to_cap(alert, GROUP)
    schema.validate(doc.decode())
    root = ET.fromstring(doc)
    assert _text(root, "cap:info/cap:headline") == "bell and nul gone"
    assert _text(root, "cap:info/cap:description") == "tab\tkept"


def test_empty_body_and_author_are_omitted():
    root = ET.fromstring(alert_to_cap(ACTIVE_SNAPPED, GROUP))
    assert root.find("cap:info/cap:description", NS) is None
    assert root.find("cap:info/cap:senderName", NS) is None
    assert _text(root, "cap:info/cap:headline") == ACTIVE_SNAPPED.title


@pytest.mark.parametrize("sender", ["has space", "a,b", "a<b", "a&b", ""])
def test_sender_with_forbidden_characters_is_refused(sender):
    with pytest.raises(ValueError, match="sender"):
        alert_to_cap(ACTIVE_EXACT, GROUP, sender=sender)


@pytest.mark.parametrize(
    "changes", [{"severity": "catastrophic"}, {"category": "alien"}, {"status": "draft"}]
)
def test_values_outside_the_vocabulary_are_refused(changes):
    with pytest.raises(ValueError):
        alert_to_cap(replace(ACTIVE_EXACT, **changes), GROUP)
