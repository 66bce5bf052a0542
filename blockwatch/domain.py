"""What the services take and give back: drafts, views, the vocabulary and the errors.

Services return these plain dataclasses, never ORM rows, so callers (the HTTP layer, the CLI,
tests) can use them after the transaction has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from shapely.geometry.base import BaseGeometry

CATEGORIES = (
    "burglary", "vehicle-prowl", "theft", "vandalism", "suspicious-activity", "violent-crime",
    "fraud-scam", "fire", "traffic", "missing-person", "lost-pet", "weather", "other",
)
#: CAP severities, least to most severe (``unknown`` ranks lowest).
SEVERITIES = ("unknown", "minor", "moderate", "severe", "extreme")
URGENCIES = ("immediate", "expected", "future", "past", "unknown")
CERTAINTIES = ("observed", "likely", "possible", "unlikely", "unknown")
ALERT_STATUSES = ("active", "cancelled", "expired")
ROLES = ("member", "coordinator")
TIP_CATEGORIES = (
    "home-security", "vehicles", "personal-safety", "fraud-scams", "emergency-preparedness",
    "running-a-block-watch",
)
#: Public readers see alert locations snapped to a grid of this size (API.md: about 150 m).
PUBLIC_LOCATION_CELL_M = 150.0


class DomainError(Exception):
    """Base of the errors services raise; each maps to one HTTP status in the API."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class ValidationError(DomainError):
    """Field values that break a rule; ``errors`` maps each field to its messages."""

    status = 422
    title = "Invalid field values"

    @classmethod
    def field(cls, name: str, message: str) -> ValidationError:
        """One field, one message."""
        return cls(f"{name}: {message}", {name: [message]})


class NotAuthenticated(DomainError):
    status = 401
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    title = "Not allowed"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class PreconditionFailed(DomainError):
    """The entity changed since the version the caller based its edit on."""

    status = 412
    title = "Precondition failed"

    def __init__(self, detail: str, current_version: int) -> None:
        super().__init__(detail)
        self.current_version = current_version


@dataclass(frozen=True)
class Actor:
    """Who is asking: an account with its roles, or the anonymous public."""

    account_id: str | None = None
    display_name: str | None = None
    is_admin: bool = False
    #: group id -> role (``member`` or ``coordinator``)
    roles: dict[str, str] = field(default_factory=dict)

    @classmethod
    def anonymous(cls) -> Actor:
        return cls()

    @property
    def is_authenticated(self) -> bool:
        """Holds a token (or is the operator at the command line)."""
        return self.account_id is not None or self.is_admin

    def coordinates(self, group_id: str) -> bool:
        """May post, cancel and edit in this group."""
        return self.is_admin or self.roles.get(group_id) == "coordinator"

    def belongs_to(self, group_id: str) -> bool:
        """Member or coordinator of the group (admins count too): sees exact alert locations."""
        return self.is_admin or group_id in self.roles


ANONYMOUS = Actor()
#: The operator at the command line: may do what an admin may (it owns no account, so it
#: creates and edits groups but does not author alerts).
OPERATOR = Actor(account_id=None, display_name="blockwatch command line", is_admin=True)


@dataclass(frozen=True)
class GroupDraft:
    """What an admin gives to create a group. ``boundary`` is GeoJSON or shapely."""

    name: str
    boundary: BaseGeometry | dict[str, Any]
    description: str = ""
    languages: tuple[str, ...] = ("en",)
    meeting_info: str = ""
    id: str | None = None


@dataclass(frozen=True)
class Group:
    """A group as readers see it. ``version`` is its last change-log ``seq``."""

    id: str
    name: str
    description: str
    boundary: BaseGeometry
    centroid: tuple[float, float]  # (lon, lat)
    bbox: tuple[float, float, float, float]
    area_m2: float
    languages: tuple[str, ...]
    meeting_info: str
    member_count: int
    version: int
    updated_at: datetime


class GroupNearby(NamedTuple):
    """A group and its distance from the point asked about (0 inside)."""

    group: Group
    distance_m: float


@dataclass(frozen=True)
class AlertDraft:
    """What a coordinator posts. ``id`` may come from the client (offline posts)."""

    category: str
    title: str
    severity: str = "moderate"
    urgency: str = "expected"
    certainty: str = "likely"
    body: str = ""
    location: tuple[float, float] | None = None  # (lon, lat)
    expires_at: datetime | None = None
    id: str | None = None


@dataclass(frozen=True)
class Author:
    id: str | None
    display_name: str


@dataclass(frozen=True)
class Alert:
    """An alert as one reader sees it: ``location`` is exact for its group's members and
    admins, snapped to about 150 m for everyone else (``location_exact`` says which)."""

    id: str
    group_id: str
    category: str
    severity: str
    urgency: str
    certainty: str
    title: str
    body: str
    location: tuple[float, float] | None  # (lon, lat)
    location_exact: bool
    sent_at: datetime
    expires_at: datetime
    status: str
    author: Author
    version: int
    distance_m: float | None = None

    @property
    def location_precision(self) -> str:
        """``exact``, or ``approximate`` when snapped for a public reader."""
        return "exact" if self.location_exact else "approximate"


@dataclass(frozen=True)
class Tip:
    id: str
    key: str
    category: str
    language: str
    title: str
    body: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class Page:
    """A page of a list and the opaque token of the next one (None at the end)."""

    items: list
    next: str | None
