"""Safety tips on both databases: language choice with English as the fallback."""

from __future__ import annotations

import pytest

from blockwatch import tips
from blockwatch.domain import NotFound, ValidationError

TIPS = [
    {"key": "lock-doors", "category": "home-security", "translations": {
        "en": {"title": "Lock doors", "body": "Even when home."},
        "es": {"title": "Cierre las puertas", "body": "Aun estando en casa."},
        "zh-Hans": {"title": "锁门", "body": "在家时也要锁门。"}}},
    {"key": "hide-valuables", "category": "vehicles", "translations": {
        "en": {"title": "Hide valuables", "body": "Nothing in sight."}}},
]


def test_first_preferred_language_else_english(db):
    tips.upsert_tips(db, TIPS)
    chosen, used = tips.tips_for(db, ["es-MX", "en"])
    assert [(t.key, t.language) for t in chosen] == [("lock-doors", "es"), ("hide-valuables", "en")]
    assert used[0] in ("es", "en") and set(used) == {"es", "en"}
    chinese, used = tips.tips_for(db, ["zh-CN"], category="home-security")
    assert [t.language for t in chinese] == ["zh-Hans"] and used == ["zh-Hans"]
    fallback, used = tips.tips_for(db, ["so"])
    assert {t.language for t in fallback} == {"en"} and used == ["en"]


def test_reloading_unchanged_tips_writes_nothing(db):
    assert tips.upsert_tips(db, TIPS) == 4
    assert tips.upsert_tips(db, TIPS) == 0
    edited = [dict(TIPS[1], translations={"en": {"title": "Hide it", "body": "All of it."}})]
    assert tips.upsert_tips(db, edited) == 1


def test_get_tip_and_errors(db):
    tips.upsert_tips(db, TIPS)
    tip = tips.get_tip(db, tips.tip_id("lock-doors", "es"))
    assert tip.title == "Cierre las puertas"
    with pytest.raises(NotFound):
        tips.get_tip(db, tips.tip_id("nope", "en"))
    with pytest.raises(ValidationError):
        tips.tips_for(db, ["en"], category="astrology")
