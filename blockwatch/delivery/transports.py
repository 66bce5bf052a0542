"""Transports: how one message reaches one device over FCM, Web Push or a webhook, and what the
receiver's answer means (delivered, retry later, or the device's address is dead).

Each transport has one method, ``send(push, message) -> Outcome``, and never raises for a
receiver's or a network's failure: the worker decides about backoff, dead letters and
deactivation from the outcome alone. ``permanent`` is kept for answers that say the *device's
address* can never work again (the worker deactivates the device on it); a fault of ours or of a
message (bad credentials, a malformed request) is ``retry``, so a misconfigured server dead-letters
deliveries instead of silently unsubscribing every device.

This module also owns the webhook url policy (https, no private addresses: ``check_webhook_url``)
and the webhook signature (``signature_header`` to sign, ``verify_signature`` for receivers).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from google.oauth2 import service_account
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

__all__ = [
    "FCM_SCOPE",
    "FcmTransport",
    "Message",
    "Outcome",
    "Transport",
    "WebPushTransport",
    "WebhookTransport",
    "check_webhook_url",
    "fcm_message",
    "payload_bytes",
    "signature_header",
    "verify_signature",
]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

# Severities that go out as high priority (FCM "high", APNs 10, Web Push "Urgency: high").
URGENT_SEVERITIES = frozenset({"severe", "extreme"})

# A notification shows a few lines; the whole alert travels in the data (FCM) or the payload.
NOTIFICATION_BODY_MAX_CHARS = 300

# FCM allows 4096 bytes of payload, and APNs 4096 bytes for the whole JSON it hands the phone,
# which holds the notification, our data keys (the alert JSON escaped once more) and what FCM and
# APNs add themselves ("aps" extras, "gcm.message_id", "google.c.*"). Measuring the notification and
# data as compact JSON and keeping ~500 bytes for the rest keeps both under their limits.
FCM_PAYLOAD_BUDGET_BYTES = 3600

# RFC 8291 §4: one aes128gcm record of at most 4096 bytes, minus the 86-byte header (salt, record
# size, the sender's 65-byte key), the padding delimiter and the 16-byte tag, leaves 3993 bytes.
WEBPUSH_MAX_PLAINTEXT_BYTES = 3993

FCM_MAX_TTL_S = 28 * 24 * 3600  # FCM keeps a message at most 4 weeks
TRUNCATION_MARK = "…"


@dataclass(frozen=True)
class Message:
    """What the worker hands a transport: an alert or its cancellation, for one delivery."""

    kind: str  # "alert" or "cancel"
    alert: dict  # the public alert object, JSON-ready (API.md "Alert object")
    idempotency_key: str  # one per delivery; an alert and its cancellation have different keys


@dataclass(frozen=True)
class Outcome:
    """What became of one send: ``delivered``, ``retry``, or ``permanent`` (deactivate the device)
    when the answer says the device's address can never work again. The worker adds its own:
    ``gone`` (alert or device gone), ``released`` (never sent: the round ran out of time) and
    ``outlasted`` (still under way when the round ended)."""

    status: str
    detail: str  # short and human-readable, for logs and the admin view
    retry_after_s: float | None = None  # from the receiver's Retry-After, when it sent one


class Transport(Protocol):
    platform: str  # "fcm" | "webpush" | "webhook"

    def send(self, push: dict, message: Message) -> Outcome: ...


def _retry(detail: str, retry_after_s: float | None = None) -> Outcome:
    return Outcome("retry", detail, retry_after_s)


def _permanent(detail: str) -> Outcome:
    return Outcome("permanent", detail)


# -- shared helpers ---------------------------------------------------------------------------


def payload_bytes(message: Message, *, alert: Mapping | None = None, **extra: Any) -> bytes:
    """The JSON body a webhook and a Web Push subscriber receive: compact, UTF-8, serialised once.

    >>> payload_bytes(Message("cancel", {"id": "a1"}, "k1"))
    b'{"kind":"cancel","alert":{"id":"a1"},"idempotency_key":"k1"}'
    """
    body = {
        "kind": message.kind,
        "alert": message.alert if alert is None else alert,
        "idempotency_key": message.idempotency_key,
        **extra,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _fit_alert(alert: Mapping, fits: Callable[[Mapping, bool], bool]) -> tuple[Mapping, bool]:
    """The alert, with its ``body`` cut (and marked with an ellipsis) just enough that it fits.

    ``fits(alert, truncated)`` says whether a message made of that alert, and marked truncated or
    not, is within the limit. Returns the alert and whether it was cut. Title and the other fields
    are bounded by API.md and small; only ``body`` (up to 4000 characters) can push a message over
    a push service's limit.
    """
    if fits(alert, False):
        return alert, False
    text = str(alert.get("body") or "")

    def cut(n: int) -> dict:
        return {**alert, "body": text[:n] + TRUNCATION_MARK}

    low, high = 0, len(text)  # the longest prefix that fits, by bisection: O(log n) encodings
    while low < high:
        mid = (low + high + 1) // 2
        if fits(cut(mid), True):
            low = mid
        else:
            high = mid - 1
    return cut(low), True


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + TRUNCATION_MARK


def _retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header, delay-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is true too
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _expires_ts(alert: Mapping) -> float | None:
    value = alert.get("expires_at")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _is_urgent(alert: Mapping) -> bool:
    return alert.get("severity") in URGENT_SEVERITIES


# -- url policy (server-side request forgery) -------------------------------------------------


class _Refused(Exception):
    """The url breaks the policy: refused for good."""


class _Unresolved(Exception):
    """The host did not resolve: refused at registration, worth a retry at send time."""


_ADDRESS_KINDS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)


def _address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    # ::ffff:10.0.0.1 reaches 10.0.0.1, and Python before 3.13 does not classify it as private.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # 6to4 (2002::/16) carries an IPv4 address too (2002:a9fe:a9fe:: is 169.254.169.254),
    # and Python 3.11 calls it global.
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        inner = _address_problem(ip.sixtofour)
        if inner is not None:
            return f"6to4 address {ip} of {inner}"
    for attribute, kind in _ADDRESS_KINDS:
        if getattr(ip, attribute):
            return f"{kind} address {ip}"
    if not ip.is_global:  # shared address space (100.64/10), benchmarking nets and the like
        return f"non-public address {ip}"
    return None


def _check_url(url: str, *, allow_private: bool, what: str = "url") -> None:
    """Raise ``_Refused`` or ``_Unresolved`` unless ``url`` may be sent to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _Refused(f"{what} is not a valid URL ({exc})") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise _Refused(f"{what} must be https")
    host = parts.hostname
    if not host:
        raise _Refused(f"{what} has no host")
    if allow_private:
        return
    # Every address the name resolves to must be public: a name with one public and one private
    # address would otherwise let the connection pick the private one. The HTTP client resolves
    # the name again when it connects, so a name whose DNS answer changes in between (DNS
    # rebinding) can still slip through; closing that needs connecting to the checked address
    # itself or an egress proxy that enforces the policy. We accept that residual risk.
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Unresolved(f"{what} host {host} does not resolve ({exc})") from None
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone id
        problem = _address_problem(ip)
        if problem:
            raise _Refused(f"{what} host {host} resolves to a {problem}")


def check_webhook_url(url: str, *, allow_private: bool) -> str | None:
    """Why a webhook url is refused, or None when it is acceptable (for registration time).

    It must be https and every address its host resolves to must be public (no private,
    loopback, link-local, multicast, reserved or unspecified address). With ``allow_private``
    (development and tests) http and any address are accepted. The same policy suits a Web Push
    endpoint, which is just as much a url a stranger hands the server.

    >>> check_webhook_url("https://93.184.216.34/hook", allow_private=False) is None
    True
    >>> check_webhook_url("https://127.0.0.1/hook", allow_private=False)
    'url host 127.0.0.1 resolves to a loopback address 127.0.0.1'
    """
    try:
        _check_url(url, allow_private=allow_private)
    except (_Refused, _Unresolved) as exc:
        return str(exc)
    return None


# -- webhook ----------------------------------------------------------------------------------


def signature_header(secret: str, body: bytes, *, t: int) -> str:
    """The ``Blockwatch-Signature`` value for ``body`` sent at unix time ``t``.

    >>> signature_header("s3cret", b'{"kind":"alert"}', t=1700000000)
    't=1700000000,v1=c62bb4c59a0a672836611c7994f7343c3e74be1086db1465069b779cf27db21c'
    """
    digest = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300
) -> bool:
    """What a webhook receiver does with ``Blockwatch-Signature``: True only if one of its ``v1``
    signatures is the HMAC-SHA256 of ``"<t>.<raw body>"`` under ``secret`` and ``t`` is within
    ``tolerance_s`` of ``now`` (so a captured request cannot be replayed later).

    Verify the raw bytes as received, before parsing the JSON; then use ``Idempotency-Key`` to
    drop a delivery seen before (a retry after a lost answer sends the same key again).

    >>> body = b'{"kind":"alert"}'
    >>> header = signature_header("s3cret", body, t=1700000000)
    >>> verify_signature("s3cret", header, body, now=1700000010)
    True
    >>> verify_signature("s3cret", header, body, now=1700000400)  # too old
    False
    >>> verify_signature("other", header, body, now=1700000010)
    False
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature_header(secret, body, t=timestamp).partition(",v1=")[2]
    # Check every candidate (several v1 values allow rotating a secret) without short-circuiting;
    # as bytes, since compare_digest refuses a str that is not ASCII.
    matches = [
        hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
        for candidate in candidates
    ]
    return any(matches)


#: Bytes of a webhook's answer read (and dropped) so its connection can be reused.
MAX_ANSWER_READ = 64 * 1024


class WebhookTransport:
    """POST the message as signed JSON to a webhook url (API.md "Devices and push")."""

    platform = "webhook"

    def __init__(
        self,
        *,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.clock = clock
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def send(self, push: dict, message: Message) -> Outcome:
        url, secret = push.get("url"), push.get("secret")
        if not isinstance(url, str) or not isinstance(secret, str) or not secret:
            return _permanent("webhook push address lacks url or secret")
        try:
            _check_url(url, allow_private=self.allow_private)
        except _Refused as exc:
            return _permanent(f"refused: {exc}")
        except _Unresolved as exc:
            # A name that does not resolve now may later; one dead for good ends as a dead letter.
            return _retry(f"DNS: {exc}")
        body = payload_bytes(message)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "Blockwatch-Signature": signature_header(secret, body, t=int(self.clock())),
        }
        try:
            # Streamed so a receiver cannot make us read a large answer: only status and headers
            # count. A small answer is read to its end all the same, which is what lets the
            # connection go back to the pool (one TLS handshake per receiver, not per
            # delivery). A redirect is not followed: its target never passed the url check.
            with self._client.stream(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=self.timeout_s,
                follow_redirects=False,
            ) as response:
                status = response.status_code
                retry_after = response.headers.get("Retry-After")
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read > MAX_ANSWER_READ:
                        break
        except httpx.TimeoutException:
            return _retry("timeout")
        except httpx.HTTPError as exc:
            return _retry(f"connection error: {type(exc).__name__}")
        return _outcome_of(status, retry_after, self.clock())


def _outcome_of(status: int, retry_after: str | None, now: float,
                gone: tuple[int, ...] = (404, 410)) -> Outcome:
    """What a receiver's HTTP status means: 2xx delivered, ``gone`` refused for good (the
    device is deactivated), anything else retried (after ``Retry-After`` when it says)."""
    if 200 <= status < 300:
        return Outcome("delivered", f"HTTP {status}")
    if status in gone:
        return _permanent(f"HTTP {status}")
    return _retry(f"HTTP {status}", _retry_after_s(retry_after, now))


# -- FCM (HTTP v1) ----------------------------------------------------------------------------


class _TimedRequest(google.auth.transport.requests.Request):
    # google-auth refreshes without a timeout (its default is 120 s); a hung token endpoint
    # must not hold the worker longer than a send may take.
    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def __call__(  # type: ignore[override]
        self, url, method="GET", body=None, headers=None, timeout=None, **kwargs
    ):
        return super().__call__(
            url, method, body, headers, timeout=timeout or self._timeout_s, **kwargs
        )


def _fcm_error(response: httpx.Response) -> tuple[str, str, list[dict]]:
    """(FCM error code or canonical status, message, details) of an error answer."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):  # not JSON, or not an object
        return "", "", []
    if not isinstance(error, dict):
        return "", "", []
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    code = str(error.get("status") or "")
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError"):
            code = str(detail.get("errorCode") or code)
    return code, str(error.get("message") or ""), details


def _concerns_token(message: str, details: list[dict]) -> bool:
    # FCM answers a malformed or foreign token with 400 INVALID_ARGUMENT ("The registration token
    # is not a valid FCM registration token"), the same code as for a bad field of our own message;
    # the message text or the field violation tells them apart.
    if "registration token" in message.lower():
        return True
    for detail in details:
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return False


def _str(value: object) -> str:
    return "" if value is None else str(value)


def fcm_message(token: str, message: Message, *, now: float) -> dict:
    """The FCM HTTP v1 ``{"message": ...}`` for one device (see the FcmTransport docstring)."""
    alert = message.alert
    alert_id = _str(alert.get("id"))
    group_id = _str(alert.get("group_id"))
    title = _str(alert.get("title"))
    urgent = _is_urgent(alert)
    if message.kind == "cancel":
        notification = {"title": f"Cancelled: {title}", "body": "This alert has been withdrawn."}
        aps: dict[str, Any] = {
            "thread-id": group_id,
            "content-available": 1,  # wakes the app so it can drop the alert from its own list
            "interruption-level": "passive",  # replaces the alert without a sound
        }
    else:
        notification = {
            "title": title,
            "body": _clip(_str(alert.get("body")), NOTIFICATION_BODY_MAX_CHARS),
        }
        aps = {
            "sound": "default",
            "thread-id": group_id,
            "interruption-level": "time-sensitive" if urgent else "active",
        }

    def data_for(shown: Mapping, truncated: bool) -> dict[str, str]:
        data = {
            "kind": message.kind,
            "alert_id": alert_id,
            "group_id": group_id,
            "category": _str(alert.get("category")),
            "severity": _str(alert.get("severity")),
            "idempotency_key": message.idempotency_key,
            "alert": json.dumps(shown, separators=(",", ":"), ensure_ascii=False),
        }
        if truncated:
            data["truncated"] = "true"  # the app fetches GET /v1/alerts/{id} for the whole body
        return data

    def fits(shown: Mapping, truncated: bool) -> bool:
        probe = {"notification": notification, "data": data_for(shown, truncated)}
        encoded = json.dumps(probe, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return len(encoded) <= FCM_PAYLOAD_BUDGET_BYTES

    data = data_for(*_fit_alert(alert, fits))

    android: dict[str, Any] = {
        "priority": "high" if urgent else "normal",
        # No collapse_key: FCM keeps at most four collapse keys per device, so one per alert would
        # drop alerts for a device that is offline a while; the tag replaces the shown one.
        "notification": {"tag": alert_id},
    }
    apns_headers = {"apns-priority": "10" if urgent else "5", "apns-collapse-id": alert_id}
    expires = _expires_ts(alert)
    if expires is not None:
        android["ttl"] = f"{int(min(FCM_MAX_TTL_S, max(0.0, expires - now)))}s"
        apns_headers["apns-expiration"] = str(max(0, int(expires)))
    return {
        "message": {
            "token": token,
            "notification": notification,
            "data": data,
            "android": android,
            "apns": {"headers": apns_headers, "payload": {"aps": aps}},
        }
    }


class FcmTransport:
    """Send through Firebase Cloud Messaging's HTTP v1 API to an Android or iOS app.

    An alert is a notification message (shown by the system even when the app is not running)
    that also carries data: ``kind`` ("alert"), ``alert_id``, ``group_id``, ``category``,
    ``severity``, ``idempotency_key`` and ``alert`` (the alert object as a JSON string; its
    ``body`` is cut to fit FCM's 4 KB, and then ``truncated`` is "true"). Android gets priority
    high for severe and extreme alerts, else normal, and a notification ``tag`` of the alert id;
    APNs gets ``apns-priority`` 10 or 5 and ``apns-collapse-id`` the alert id. Both get the alert's
    expiry (``android.ttl``, ``apns-expiration``), after which FCM drops an undelivered message.

    A cancellation is the same shape with ``kind`` "cancel" and the notification "Cancelled:
    <title>" / "This alert has been withdrawn.": the tag and collapse id make it replace the
    alert's notification on the phone even when the app is not running, and the app, seeing
    ``kind`` "cancel", drops ``alert_id`` from its own list (on iOS ``content-available`` wakes it).
    """

    platform = "fcm"

    def __init__(
        self,
        *,
        project_id: str,
        credentials: Any,
        base_url: str = "https://fcm.googleapis.com",
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project_id = project_id
        self.credentials = credentials
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self.timeout_s = timeout_s
        self.clock = clock
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._token_request = _TimedRequest(timeout_s)
        self._token_lock = threading.Lock()  # google-auth credentials are not thread-safe

    @classmethod
    def from_service_account_file(
        cls,
        path: str | os.PathLike[str],
        *,
        base_url: str = "https://fcm.googleapis.com",
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> FcmTransport:
        """A transport for the Firebase project of a service-account key file."""
        with open(path, encoding="utf-8") as key_file:
            info = json.load(key_file)
        if not info.get("project_id"):
            raise ValueError(f"{path}: no project_id; is it a service-account key file?")
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[FCM_SCOPE]
        )
        return cls(
            project_id=info["project_id"],
            credentials=credentials,
            base_url=base_url,
            timeout_s=timeout_s,
            client=client,
            clock=clock,
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _access_token(self, *, force: bool) -> str:
        with self._token_lock:
            if force or not self.credentials.valid:
                self.credentials.refresh(self._token_request)
            return self.credentials.token

    def send(self, push: dict, message: Message) -> Outcome:
        token = push.get("token")
        if not isinstance(token, str) or not token:
            return _permanent("FCM push address lacks a token")
        body = json.dumps(fcm_message(token, message, now=self.clock())).encode("utf-8")
        for attempt in (1, 2):
            try:
                access_token = self._access_token(force=attempt == 2)
            except google.auth.exceptions.GoogleAuthError as exc:
                # Our credentials or Google's token endpoint, never the device's fault.
                return _retry(f"OAuth token refresh failed: {type(exc).__name__}")
            try:
                response = self._client.post(
                    self.url,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {access_token}",
                        "Content-Type": "application/json; charset=UTF-8",
                    },
                    timeout=self.timeout_s,
                )
            except httpx.TimeoutException:
                return _retry("timeout")
            except httpx.HTTPError as exc:
                return _retry(f"connection error: {type(exc).__name__}")
            if response.status_code == 401 and attempt == 1:
                continue  # the token was revoked or expired early: refresh once, send again
            return self._outcome(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Outcome("delivered", f"HTTP {status}")
        code, text, details = _fcm_error(response)
        detail = f"HTTP {status} {code}".strip()
        if status == 404 or code == "UNREGISTERED":
            return _permanent("UNREGISTERED")
        if code == "SENDER_ID_MISMATCH":
            return _permanent("SENDER_ID_MISMATCH")
        if status == 400 and _concerns_token(text, details):
            return _permanent(f"{detail}: {text[:120]}")
        if status == 429 or status >= 500:  # QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL
            retry_after = _retry_after_s(response.headers.get("Retry-After"), self.clock())
            return _retry(detail, retry_after)
        # Any other 4xx (a bad field of our message, our service account lacking permission, 401
        # twice, THIRD_PARTY_AUTH_ERROR from a bad APNs key) is a fault of ours that would hit
        # every device alike: retry, so the worker dead-letters it, rather than deactivate.
        return _retry(f"{detail}: {text[:120]}" if text else detail)


# -- Web Push (RFC 8030, 8291, 8292) ----------------------------------------------------------


class _NoRedirectSession(requests.Session):
    # pywebpush posts through requests, which follows redirects; a redirect's target never passed
    # the endpoint check, so a 3xx stays a 3xx (and is retried).
    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


def _load_vapid(private_key: str) -> Vapid:
    """A VAPID key from what py_vapid reads: raw base64url, DER base64url, PEM, or a PEM file."""
    key = private_key.strip()
    if "-----BEGIN" in key:
        return Vapid.from_pem(key.encode("ascii"))
    if os.path.isfile(key):
        return Vapid.from_file(private_key_file=key)
    return Vapid.from_string(private_key=key)


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _subscription_problem(push: Mapping) -> str | None:
    endpoint, keys = push.get("endpoint"), push.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, Mapping):
        return "Web Push address lacks endpoint or keys"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _b64url_decode(str(keys.get("p256dh")))
        )
        auth_ok = len(_b64url_decode(str(keys.get("auth")))) == 16
    except ValueError:  # binascii.Error is a ValueError too
        return "Web Push keys are not a P-256 point and a 16-byte secret"
    return None if auth_ok else "Web Push auth secret is not 16 bytes"


def _topic(alert_id: str) -> str | None:
    # RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet; a UUID without its
    # dashes is exactly its 32 hex digits. The cancel shares it, so it replaces an alert still
    # undelivered.
    topic = re.sub(r"[^A-Za-z0-9_]", "", alert_id)[:32]
    return topic or None


class WebPushTransport:
    """Send through a browser's push service: the webhook's JSON body, encrypted (aes128gcm) and
    VAPID-signed, with ``Urgency`` from the severity and a ``Topic`` from the alert id.

    The endpoint must pass the webhook url policy (https, public addresses only; anything with
    ``allow_private``): it is a url that anyone registering a device chooses, as a webhook's is.
    """

    platform = "webpush"

    def __init__(
        self,
        *,
        vapid_private_key: str,
        vapid_subject: str,
        ttl_s: int = 86400,
        timeout_s: float = 10.0,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vapid_subject = vapid_subject
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.clock = clock
        try:
            self._vapid = _load_vapid(vapid_private_key)
            # Signs once now so a bad key or subject (mailto: or https:) fails at start-up.
            self._vapid.sign({"sub": vapid_subject, "aud": "https://push.example"})
        except Exception as exc:
            raise ValueError(f"unusable VAPID key or subject: {exc}") from exc
        self._session = _NoRedirectSession()

    def close(self) -> None:
        self._session.close()

    def send(self, push: dict, message: Message) -> Outcome:
        problem = _subscription_problem(push)
        if problem:
            return _permanent(problem)
        try:
            _check_url(push["endpoint"], allow_private=self.allow_private, what="endpoint")
        except _Refused as exc:
            return _permanent(f"refused: {exc}")
        except _Unresolved as exc:
            return _retry(f"DNS: {exc}")

        def webpush_payload(shown: Mapping, truncated: bool) -> bytes:
            # "truncated" tells the service worker to fetch GET /v1/alerts/{id} for the whole body.
            return payload_bytes(message, alert=shown, **({"truncated": True} if truncated else {}))

        def fits(shown: Mapping, truncated: bool) -> bool:
            return len(webpush_payload(shown, truncated)) <= WEBPUSH_MAX_PLAINTEXT_BYTES

        data = webpush_payload(*_fit_alert(message.alert, fits))
        headers: dict[str, str | int | float] = {
            "Urgency": "high" if _is_urgent(message.alert) else "normal",
        }
        topic = _topic(_str(message.alert.get("id")))
        if topic:
            headers["Topic"] = topic
        ttl_s = self.ttl_s
        expires = _expires_ts(message.alert)
        if expires is not None:  # nothing to gain from delivering an alert after it expired
            ttl_s = int(min(ttl_s, max(0.0, expires - self.clock())))
        try:
            response = webpush(
                subscription_info=push,
                data=data.decode("utf-8"),
                vapid_private_key=self._vapid,
                # A fresh dict each time: pywebpush writes "aud" and "exp" into it.
                vapid_claims={"sub": self.vapid_subject},
                content_encoding="aes128gcm",
                timeout=self.timeout_s,
                ttl=ttl_s,
                headers=headers,
                requests_session=self._session,
            )
            status, answer = response.status_code, response
        except WebPushException as exc:
            if exc.response is None:
                return _permanent(f"Web Push: {exc.message}")
            status, answer = exc.response.status_code, exc.response
        except requests.Timeout:
            return _retry("timeout")
        except requests.RequestException as exc:
            return _retry(f"connection error: {type(exc).__name__}")
        # 413: the payload is already cut to RFC 8291's 3993 bytes, which every push service
        # must take (RFC 8030 §7.2); one that refuses it will refuse every message to this
        # device. 429 and 5xx are the push service's load; any other 4xx (a VAPID key the
        # subscription was not made with, a malformed header) is ours: retry, dead letter, no
        # deactivation.
        return _outcome_of(status, answer.headers.get("Retry-After"), self.clock(),
                           gone=(404, 410, 413))
