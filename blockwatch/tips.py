"""Safety tips: crime-prevention advice in several languages, chosen by the reader's
preferences with English as the fallback."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from blockwatch import changelog
from blockwatch.checks import existing_id
from blockwatch.db import Database
from blockwatch.domain import TIP_CATEGORIES, NotFound, Tip, ValidationError
from blockwatch.models import SafetyTip

FALLBACK_LANGUAGE = "en"
_TIP_NAMESPACE = uuid.UUID("6f1c9a53-2a4e-4f5e-9d7c-1b4c6a0e9b21")
# Tags that name the same written language as the tag we store tips under.
_ALIASES = {"zh": "zh-Hans", "zh-cn": "zh-Hans", "zh-sg": "zh-Hans", "zh-hans-cn": "zh-Hans"}


def tip_id(key: str, language: str) -> str:
    """The stable id of one translation of a tip."""
    return str(uuid.uuid5(_TIP_NAMESPACE, f"{key}/{language}"))


def tips_for(
    db: Database, languages: Sequence[str], category: str | None = None
) -> tuple[list[Tip], list[str]]:
    """Every tip (of ``category``, if given) in the first of ``languages`` it exists in, else
    English. Returns the tips, ordered by category then key, and the languages used, most used
    first (what ``Content-Language`` should say)."""
    if category is not None and category not in TIP_CATEGORIES:
        raise ValidationError.field("category", f"must be one of {', '.join(TIP_CATEGORIES)}")
    with db.read() as session:
        query = select(SafetyTip)
        if category is not None:
            query = query.where(SafetyTip.category == category)
        rows = session.scalars(query).all()
    available: dict[str, dict[str, SafetyTip]] = {}
    for row in rows:
        available.setdefault(row.key, {})[row.language.lower()] = row
    preferences = [*(_normalise(tag) for tag in languages), FALLBACK_LANGUAGE]
    chosen: list[SafetyTip] = []
    for translations in available.values():
        row = _first_match(translations, preferences)
        if row is not None:
            chosen.append(row)
    chosen.sort(key=lambda row: (TIP_CATEGORIES.index(row.category), row.key))
    counts: dict[str, int] = {}
    for row in chosen:
        counts[row.language] = counts.get(row.language, 0) + 1
    used = sorted(counts, key=lambda language: -counts[language])
    return [_view(row) for row in chosen], used or [FALLBACK_LANGUAGE]


def get_tip(db: Database, tip_id_: str) -> Tip:
    """One tip by id."""
    with db.read() as session:
        row = session.get(SafetyTip, existing_id(tip_id_, "tip"))
        if row is None:
            raise NotFound(f"no tip {tip_id_}")
        return _view(row)


def upsert_tips(db: Database, tips: Iterable[Mapping[str, Any]]) -> int:
    """Load tips in the fixture format (``key``, ``category``, ``translations``: language ->
    ``title``/``body``) in one transaction; only what changed gets a new version. Returns how
    many translations were written."""
    records = []
    for tip in tips:
        if tip["category"] not in TIP_CATEGORIES:
            raise ValidationError.field("category", f"unknown tip category {tip['category']!r}")
        for language, text in tip["translations"].items():
            records.append((tip["key"], tip["category"], language, text["title"], text["body"]))
    now = datetime.now(UTC)
    written = []
    with db.write() as session:
        existing = {row.id: row for row in session.scalars(select(SafetyTip)).all()}
        for key, category, language, title, body in records:
            row = existing.get(tip_id(key, language))
            if row is None:
                row = SafetyTip(id=tip_id(key, language), key=key, language=language)
                session.add(row)
            elif (row.category, row.title, row.body) == (category, title, body):
                continue
            row.category, row.title, row.body, row.updated_at = category, title, body, now
            written.append(row)
        if written:
            changelog.stamp(session, *written)
    return len(written)


def language_matcher(tags: Sequence[str]):
    """A test of a stored tip language against the reader's tags (each tag, its primary
    language, its aliases; Chinese scripts never stand in for each other)."""
    wanted = {_normalise(tag) for tag in tags}
    primaries = {tag.split("-")[0] for tag in wanted if not tag.startswith("zh")}

    def matches(language: str) -> bool:
        tag = language.lower()
        return tag in wanted or (not tag.startswith("zh") and tag.split("-")[0] in primaries)

    return matches


def normalise_language(tag: str) -> str:
    """A language tag as tips are matched by: lower case, aliases resolved (``zh`` is
    ``zh-hans``)."""
    return _normalise(tag)


def view(row: SafetyTip) -> Tip:
    """A tip row as readers see it."""
    return _view(row)


def _normalise(tag: str) -> str:
    tag = tag.strip().replace("_", "-").lower()
    return _ALIASES.get(tag, tag).lower()


def _first_match(translations: dict[str, SafetyTip], preferences: list[str]) -> SafetyTip | None:
    for preference in preferences:
        if preference in translations:
            return translations[preference]
        primary = preference.split("-")[0]
        for language, row in translations.items():
            if language.split("-")[0] == primary and primary != "zh":
                return row
    return None


def _view(row: SafetyTip) -> Tip:
    return Tip(
        id=row.id, key=row.key, category=row.category, language=row.language, title=row.title,
        body=row.body, version=row.seq, updated_at=row.updated_at,
    )
