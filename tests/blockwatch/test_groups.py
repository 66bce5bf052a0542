"""Group services on both databases."""

from __future__ import annotations

import pytest
import shapely

from blockwatch import groups
from blockwatch.domain import (
    ANONYMOUS,
    Forbidden,
    GroupDraft,
    NotAuthenticated,
    NotFound,
    PreconditionFailed,
    ValidationError,
)
from tests.blockwatch.factories import actor, admin, group, square


def test_create_and_read_a_group(db):
    created = group(db, "Capitol Hill", languages=("en", "es"), description="15th Ave E")
    read = groups.get_group(db, created.id)
    assert read == created
    assert read.version > 0
    assert read.languages == ("en", "es")
    assert read.area_m2 == pytest.approx(0.004 * 111_200 * 0.004 * 75_000, rel=0.05)
    assert read.bbox == pytest.approx((-122.32, 47.61, -122.316, 47.614))
    assert read.centroid == pytest.approx((-122.318, 47.612))
    assert read.member_count == 0


def test_groups_at_and_near_use_true_distances(db):
    a = group(db, "A", lon=-122.320, lat=47.610)
    b = group(db, "B", lon=-122.310, lat=47.610)
    overlapping = group(db, "Overlap", lon=-122.318, lat=47.611)
    at = groups.groups_at(db, -122.3175, 47.6115)
    assert [g.id for g in at] == sorted([a.id, overlapping.id])
    near = groups.find_groups_near(db, -122.3175, 47.6115, radius_m=1000)
    assert [hit.group.id for hit in near.items][:2] == sorted([a.id, overlapping.id])
    assert [hit.distance_m for hit in near.items][:2] == [0.0, 0.0]
    assert near.items[2].group.id == b.id
    assert near.items[2].distance_m == pytest.approx(0.0075 * 75_150, rel=0.01)
    assert near.next is None


def test_nearby_pages_with_next(db):
    made = [group(db, f"G{i}", lon=-122.32 + i * 0.005, lat=47.61) for i in range(5)]
    first = groups.find_groups_near(db, -122.32, 47.61, radius_m=5000, limit=2)
    second = groups.find_groups_near(db, -122.32, 47.61, radius_m=5000, limit=2, next=first.next)
    third = groups.find_groups_near(db, -122.32, 47.61, radius_m=5000, limit=2, next=second.next)
    ids = [hit.group.id for page in (first, second, third) for hit in page.items]
    assert ids == [g.id for g in made]
    assert third.next is None


def test_groups_in_bbox_and_simplified(db):
    a = group(db, "A", lon=-122.32, lat=47.61)
    group(db, "Far", lon=-122.20, lat=47.70)
    page = groups.groups_in_bbox(db, (-122.33, 47.60, -122.31, 47.62), simplify_m=5)
    assert [g.id for g in page.items] == [a.id]
    with pytest.raises(ValidationError) as raised:
        groups.groups_in_bbox(db, (-122.31, 47.62, -122.33, 47.60))
    assert "bbox" in raised.value.errors


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda db: groups.find_groups_near(db, float("nan"), 47.6), "lon"),
        (lambda db: groups.find_groups_near(db, -122.3, 91.0), "lat"),
        (lambda db: groups.find_groups_near(db, -122.3, 47.6, radius_m=0), "radius_m"),
        (lambda db: groups.find_groups_near(db, -122.3, 47.6, radius_m=50_001), "radius_m"),
        (lambda db: groups.find_groups_near(db, -122.3, 47.6, limit=101), "limit"),
        (lambda db: groups.find_groups_near(db, -122.3, 47.6, next="garbage!"), "next"),
    ],
)
def test_bad_arguments_name_their_field(db, call, field):
    with pytest.raises(ValidationError) as raised:
        call(db)
    assert field in raised.value.errors


def test_invalid_boundary_names_the_problem_and_where(db):
    bowtie = shapely.Polygon([(-122.32, 47.61), (-122.31, 47.62), (-122.31, 47.61),
                              (-122.32, 47.62)])
    with pytest.raises(ValidationError) as raised:
        groups.create_group(db, admin(db), GroupDraft(name="Bad", boundary=bowtie))
    [message] = raised.value.errors["boundary"]
    assert "self-intersection at (-122.315, 47.615)" in message
    with pytest.raises(ValidationError):
        groups.create_group(db, admin(db), GroupDraft(name="Point", boundary=shapely.Point(0, 0)))


def test_only_admins_create_groups(db):
    with pytest.raises(NotAuthenticated):
        groups.create_group(db, ANONYMOUS, GroupDraft(name="X", boundary=square(0, 0)))
    existing = group(db)
    coordinator = actor(db, "Coordinator", "coordinator", existing.id)
    with pytest.raises(Forbidden):
        groups.create_group(db, coordinator, GroupDraft(name="X", boundary=square(0, 0)))


def test_update_is_guarded_by_version_and_role(db):
    g = group(db)
    other = group(db, "Other", lon=-122.30)
    coordinator = actor(db, "Coordinator", "coordinator", g.id)
    stranger = actor(db, "Stranger", "coordinator", other.id)
    member = actor(db, "Member", "member", g.id)
    g = groups.get_group(db, g.id)  # joining members changed its member_count, so its version
    for who in (stranger, member):
        with pytest.raises(Forbidden):
            groups.update_group(db, who, g.id, {"name": "New"}, g.version)
    moved = groups.update_group(
        db, coordinator, g.id, {"name": "New name", "boundary": square(-122.0, 47.0)}, g.version
    )
    assert moved.name == "New name" and moved.version > g.version
    assert groups.groups_at(db, -122.318, 47.612) == []
    assert [x.id for x in groups.groups_at(db, -121.998, 47.002)] == [g.id]
    with pytest.raises(PreconditionFailed) as raised:
        groups.update_group(db, coordinator, g.id, {"name": "Stale"}, g.version)
    assert raised.value.current_version == moved.version
    assert groups.get_group(db, g.id).name == "New name"


def test_a_failed_update_writes_nothing(db):
    g = group(db)
    with pytest.raises(ValidationError):
        groups.update_group(db, admin(db), g.id, {"name": "Fine", "languages": "en"}, g.version)
    assert groups.get_group(db, g.id) == g
    with pytest.raises(ValidationError):
        groups.update_group(db, admin(db), g.id, {"colour": "red"}, g.version)


def test_delete_group_removes_it_from_queries(db):
    g = group(db)
    groups.delete_group(db, admin(db), g.id)
    with pytest.raises(NotFound):
        groups.get_group(db, g.id)
    assert groups.groups_at(db, -122.318, 47.612) == []


def test_member_count_is_part_of_the_group_and_of_its_version(db):
    g = group(db)
    actor(db, "One", "member", g.id)
    actor(db, "Two", "coordinator", g.id)
    now = groups.get_group(db, g.id)
    assert now.member_count == 2
    assert now.version > g.version
