"""The multilingual safety-tips fixture is complete and well-formed."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "safety_tips.json"

CATEGORIES = {
    "home-security",
    "vehicles",
    "personal-safety",
    "fraud-scams",
    "emergency-preparedness",
    "running-a-block-watch",
}
LANGUAGES = {"en", "es", "zh-Hans", "vi", "so"}
KEY_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
# Letters that exist in Vietnamese but not in plain Latin or Spanish text, once tone marks
# (grave, acute, tilde, hook above, dot below) are stripped, e.g. "ặ" -> "ă".
VI_LETTERS = set("ăâđêôơưĂÂĐÊÔƠƯ")
VI_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def _tips() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


TIPS = _tips()


def _has_vietnamese_letters(text: str) -> bool:
    decomposed = unicodedata.normalize("NFD", text)
    if "\u0309" in decomposed or "\u0323" in decomposed:  # hook above, dot below
        return True
    base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in VI_TONES))
    return any(c in VI_LETTERS for c in base)


def test_file_is_pretty_printed_utf8_json():
    text = FIXTURE.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), ensure_ascii=False, indent=2) + "\n"


def test_at_least_30_tips():
    assert isinstance(TIPS, list)
    assert len(TIPS) >= 30


def test_keys_are_unique_kebab_case_slugs():
    keys = [tip["key"] for tip in TIPS]
    assert len(keys) == len(set(keys))
    assert [k for k in keys if not KEY_RE.match(k)] == []


def test_categories_are_known_and_each_has_at_least_four_tips():
    counts = Counter(tip["category"] for tip in TIPS)
    assert set(counts) == CATEGORIES
    assert {c: n for c, n in counts.items() if n < 4} == {}


@pytest.mark.parametrize("tip", TIPS, ids=lambda tip: tip["key"])
def test_tip_has_all_five_languages_within_limits(tip):
    assert set(tip) == {"key", "category", "translations"}
    translations = tip["translations"]
    assert set(translations) == LANGUAGES
    for lang, text in translations.items():
        assert set(text) == {"title", "body"}, lang
        title, body = text["title"].strip(), text["body"].strip()
        assert title and body, lang
        assert len(text["title"]) <= 80, lang
        assert len(text["body"]) <= 600, lang


@pytest.mark.parametrize("tip", TIPS, ids=lambda tip: tip["key"])
def test_translations_are_not_english_copies(tip):
    translations = tip["translations"]
    en = translations["en"]
    for lang in LANGUAGES - {"en"}:
        assert translations[lang]["title"] != en["title"], lang
        assert translations[lang]["body"] != en["body"], lang


@pytest.mark.parametrize("tip", TIPS, ids=lambda tip: tip["key"])
def test_script_specific_characters(tip):
    zh = tip["translations"]["zh-Hans"]
    vi = tip["translations"]["vi"]
    for field in ("title", "body"):
        assert CJK_RE.search(zh[field]), f"zh-Hans {field} has no CJK characters"
        assert _has_vietnamese_letters(vi[field]), f"vi {field} has no Vietnamese diacritics"
