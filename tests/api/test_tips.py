"""``/v1/tips``: the language comes from ``lang``, else ``Accept-Language``, else English, and
``Content-Language`` says which (API.md, Safety tips). The real fixture tips are loaded."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from blockwatch import tips
from blockwatch.fixtures import FIXTURES
from tests.api.helpers import RFC3339_UTC, assert_problem, etag

RECORDS = json.loads((FIXTURES / "safety_tips.json").read_text(encoding="utf-8"))
KEYS = len(RECORDS)
PER_CATEGORY = Counter(record["category"] for record in RECORDS)


@pytest.fixture
def loaded(db):
    assert tips.upsert_tips(db, RECORDS) == sum(len(r["translations"]) for r in RECORDS)


def _tips(client, query=None, **headers):
    response = client.get("/v1/tips", query_string=query or {}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response, response.get_json()["items"]


def _languages(items):
    return {item["language"] for item in items}


def test_english_without_lang_or_accept_language(client, loaded):
    response, items = _tips(client)
    assert len(items) == KEYS  # one translation of every tip
    assert _languages(items) == {"en"}
    assert response.headers["Content-Language"] == "en"
    titles = {r["translations"]["en"]["title"] for r in RECORDS}
    assert {item["title"] for item in items} == titles


@pytest.mark.parametrize("language", ["es", "vi", "so", "zh-Hans"])
def test_lang_chooses_the_language(client, loaded, language):
    response, items = _tips(client, {"lang": language})
    assert len(items) == KEYS
    assert _languages(items) == {language}
    assert response.headers["Content-Language"] == language


@pytest.mark.parametrize("language", ["es", "vi", "so"])
def test_accept_language_chooses_when_lang_is_absent(client, loaded, language):
    response, items = _tips(client, **{"Accept-Language": language})
    assert _languages(items) == {language}
    assert response.headers["Content-Language"] == language


def test_lang_beats_accept_language(client, loaded):
    response, items = _tips(client, {"lang": "vi"}, **{"Accept-Language": "es"})
    assert _languages(items) == {"vi"}
    assert response.headers["Content-Language"] == "vi"


def test_accept_language_qualities_are_honoured(client, loaded):
    response, items = _tips(client, **{"Accept-Language": "es;q=0.3, so;q=0.9, en;q=0.5"})
    assert _languages(items) == {"so"}
    assert response.headers["Content-Language"] == "so"


def test_unavailable_languages_fall_through_to_the_next_then_english(client, loaded):
    response, items = _tips(client, **{"Accept-Language": "fr-CA, fr;q=0.9, vi;q=0.5"})
    assert _languages(items) == {"vi"}
    response, items = _tips(client, **{"Accept-Language": "fr, de"})
    assert _languages(items) == {"en"}
    assert response.headers["Content-Language"] == "en"
    response, items = _tips(client, {"lang": "de"})
    assert _languages(items) == {"en"}
    assert response.headers["Content-Language"] == "en"


@pytest.mark.parametrize(("asked", "chosen"), [
    ("es-MX", "es"), ("ES", "es"), ("zh", "zh-Hans"), ("zh-CN", "zh-Hans"),
    ("zh-Hans-CN", "zh-Hans"), ("so-SO", "so"),
])
def test_regional_and_differently_cased_tags_find_their_language(client, loaded, asked,
                                                                  chosen):
    response, items = _tips(client, {"lang": asked})
    assert _languages(items) == {chosen}
    assert response.headers["Content-Language"] == chosen


def test_content_language_names_every_language_used(client, db):
    """A tip missing a translation comes in English; Content-Language lists both, the most
    used first."""
    records = [
        {"key": "a", "category": "vehicles",
         "translations": {"en": {"title": "A", "body": "a"}, "so": {"title": "A so", "body": "x"}}},
        {"key": "b", "category": "vehicles",
         "translations": {"en": {"title": "B", "body": "b"}, "so": {"title": "B so", "body": "y"}}},
        {"key": "c", "category": "vehicles", "translations": {"en": {"title": "C", "body": "c"}}},
    ]
    tips.upsert_tips(db, records)
    response, items = _tips(client, {"lang": "so"})
    assert [(i["title"], i["language"]) for i in items] == [
        ("A so", "so"), ("B so", "so"), ("C", "en")]
    assert [v.strip() for v in response.headers["Content-Language"].split(",")] == ["so", "en"]


def test_responses_vary_by_accept_language(client, loaded):
    response, _ = _tips(client)
    assert "accept-language" in response.headers.get("Vary", "").lower()


@pytest.mark.parametrize("category", sorted(PER_CATEGORY))
def test_category_filter(client, loaded, category):
    _, items = _tips(client, {"category": category, "lang": "es"})
    assert len(items) == PER_CATEGORY[category]
    assert {item["category"] for item in items} == {category}
    assert _languages(items) == {"es"}


def test_tips_are_ordered_by_category(client, loaded):
    _, items = _tips(client)
    order = ["home-security", "vehicles", "personal-safety", "fraud-scams",
             "emergency-preparedness", "running-a-block-watch"]
    ranks = [order.index(item["category"]) for item in items]
    assert ranks == sorted(ranks)


def test_list_shape(client, loaded):
    response = client.get("/v1/tips")
    body = response.get_json()
    assert set(body) == {"items", "next"}
    assert body["next"] is None
    for item in body["items"]:
        assert set(item) >= {"id", "category", "language", "title", "body", "updated_at"}
        assert RFC3339_UTC.match(item["updated_at"])


@pytest.mark.parametrize("language", ["en", "es", "zh-Hans", "vi", "so"])
def test_get_one_tip(client, db, loaded, language):
    listed = _tips(client, {"lang": language})[1][0]
    response = client.get(f"/v1/tips/{listed['id']}")
    assert response.status_code == 200
    assert response.get_json() == listed
    assert response.headers["Content-Language"] == language
    assert response.headers["ETag"] == etag(tips.get_tip(db, listed["id"]).version)
    again = client.get(f"/v1/tips/{listed['id']}",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_one_tip_ignores_the_readers_language(client, loaded):
    """The id names one translation: asking in another language does not swap it."""
    spanish = _tips(client, {"lang": "es"})[1][0]
    response = client.get(f"/v1/tips/{spanish['id']}", headers={"Accept-Language": "vi"})
    assert response.get_json()["language"] == "es"


def test_an_unknown_tip_is_404(client, loaded):
    assert_problem(client.get("/v1/tips/6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21"), 404)


def test_no_tips_at_all_is_an_empty_english_list(client):
    response, items = _tips(client)
    assert items == []
    assert response.headers["Content-Language"] == "en"
