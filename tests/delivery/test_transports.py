"""The transports against a real local HTTP server started by this module: the exact requests they
make (webhook signature, FCM v1 JSON and OAuth, Web Push encryption and VAPID) and what each
answer becomes."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from blockwatch.delivery.transports import (
    FCM_PAYLOAD_BUDGET_BYTES,
    WEBPUSH_MAX_PLAINTEXT_BYTES,
    FcmTransport,
    Message,
    Outcome,
    WebhookTransport,
    WebPushTransport,
    check_webhook_url,
    fcm_message,
    payload_bytes,
    signature_header,
    verify_signature,
)

# -- the local server -------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Scripted:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0


class LocalServer:
    """Records every request and answers each with the next scripted response (200 when none)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.responses: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends a scripted delay early, so teardown is quick
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with server._lock:
                    server.requests.append(Recorded(self.command, self.path, headers, body))
                    answer = server.responses.popleft() if server.responses else Scripted()
                    release = server._release
                if answer.delay_s:
                    release.wait(answer.delay_s)
                # The client may have given up waiting (the timeout tests): nothing to answer.
                with contextlib.suppress(OSError):
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read the recorded requests, not the server's log."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def script(self, *answers: Scripted) -> None:
        self.responses.extend(answers)

    def reset(self) -> None:
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self.requests.clear()
            self.responses.clear()

    def close(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def server(local_server: LocalServer) -> LocalServer:
    local_server.reset()
    return local_server


@pytest.fixture
def closed_port_url() -> str:
    """A url nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def json_answer(status: int, payload: object, **headers: str) -> Scripted:
    return Scripted(
        status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()
    )


# -- the message ------------------------------------------------------------------------------

NOW = datetime.fromisoformat("2026-11-23T18:05:05Z").timestamp()
ALERT = {
    "id": "6f1c2b1e-8d3a-4c5e-9f70-0a1b2c3d4e5f",
    "group_id": "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a",
    "category": "burglary",
    "severity": "severe",
    "urgency": "immediate",
    "certainty": "observed",
    "title": "Break-in on Elm Street",
    "body": "Back door forced at no. 12; police on scene. Lock sheds — Straße geschlossen ✓",
    "location": {"lat": 47.6101, "lon": -122.3343},
    "sent_at": "2026-11-23T18:04:05Z",
    "expires_at": "2026-11-30T18:04:05Z",
    "status": "active",
    "author": {"id": "3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a", "display_name": "Elm St coordinator"},
    "version": 1,
}
EXPIRES = datetime.fromisoformat(ALERT["expires_at"]).timestamp()
ALERT_MESSAGE = Message("alert", ALERT, "dlv-alert-1")
CANCEL_MESSAGE = Message("cancel", {**ALERT, "status": "cancelled", "version": 2}, "dlv-cancel-1")


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def expected_json(message: Message) -> bytes:
    body = {
        "kind": message.kind,
        "alert": message.alert,
        "idempotency_key": message.idempotency_key,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- webhook ----------------------------------------------------------------------------------

CLOCK_T = 1_800_000_000.0
SECRET = "whsec-test-3f9a"


def webhook(**kwargs) -> WebhookTransport:
    return WebhookTransport(allow_private=True, clock=lambda: CLOCK_T + 0.75, **kwargs)


def test_webhook_posts_the_signed_json_body(server: LocalServer) -> None:
    server.script(Scripted(204))
    push = {"url": f"{server.url}/hooks/elm?x=1", "secret": SECRET}

    outcome = webhook().send(push, ALERT_MESSAGE)

    assert outcome == Outcome("delivered", "HTTP 204")
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/hooks/elm?x=1")
    assert request.body == expected_json(ALERT_MESSAGE)
    assert json.loads(request.body) == {
        "kind": "alert",
        "alert": ALERT,
        "idempotency_key": "dlv-alert-1",
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "dlv-alert-1"
    signature = request.headers["blockwatch-signature"]
    # Independently of the module: t from the injected clock, HMAC-SHA256 of "<t>.<raw body>".
    expected_mac = hmac.new(
        SECRET.encode(), b"1800000000." + request.body, hashlib.sha256
    ).hexdigest()
    assert signature == f"t=1800000000,v1={expected_mac}"
    assert verify_signature(SECRET, signature, request.body, now=CLOCK_T + 30)


def test_webhook_cancel_has_its_own_key(server: LocalServer) -> None:
    webhook().send({"url": server.url, "secret": SECRET}, CANCEL_MESSAGE)

    [request] = server.requests
    assert json.loads(request.body)["kind"] == "cancel"
    assert request.headers["idempotency-key"] == "dlv-cancel-1"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Scripted(200), Outcome("delivered", "HTTP 200")),
        (Scripted(202), Outcome("delivered", "HTTP 202")),
        (Scripted(404), Outcome("permanent", "HTTP 404")),
        (Scripted(410), Outcome("permanent", "HTTP 410")),
        (Scripted(500), Outcome("retry", "HTTP 500")),
        (Scripted(400), Outcome("retry", "HTTP 400")),
        (Scripted(429, {"Retry-After": "7"}), Outcome("retry", "HTTP 429", 7.0)),
        (
            Scripted(503, {"Retry-After": email.utils.formatdate(CLOCK_T + 120, usegmt=True)}),
            Outcome("retry", "HTTP 503", 119.25),  # from the injected clock, CLOCK_T + 0.75
        ),
        (Scripted(503, {"Retry-After": "soon"}), Outcome("retry", "HTTP 503")),
    ],
)
def test_webhook_answers(server: LocalServer, answer: Scripted, expected: Outcome) -> None:
    server.script(answer)
    assert webhook().send({"url": server.url, "secret": SECRET}, ALERT_MESSAGE) == expected


def test_webhook_does_not_follow_a_redirect(server: LocalServer) -> None:
    server.script(Scripted(307, {"Location": f"{server.url}/elsewhere"}))

    outcome = webhook().send({"url": f"{server.url}/hook", "secret": SECRET}, ALERT_MESSAGE)

    assert outcome == Outcome("retry", "HTTP 307")
    assert [r.path for r in server.requests] == ["/hook"]


def test_webhook_timeout_is_a_retry(server: LocalServer) -> None:
    server.script(Scripted(200, delay_s=5))
    started = time.monotonic()

    outcome = webhook(timeout_s=0.2).send({"url": server.url, "secret": SECRET}, ALERT_MESSAGE)

    assert outcome == Outcome("retry", "timeout")
    assert time.monotonic() - started < 2


def test_webhook_connection_refused_is_a_retry(closed_port_url: str) -> None:
    outcome = webhook().send({"url": closed_port_url, "secret": SECRET}, ALERT_MESSAGE)
    assert outcome.status == "retry"
    assert "ConnectError" in outcome.detail


@pytest.mark.parametrize(
    ("url_path", "reason"),
    [("http://127.0.0.1:{port}/", "https"), ("https://127.0.0.1:{port}/", "loopback")],
)
def test_webhook_refuses_a_local_url_without_allow_private(
    server: LocalServer, url_path: str, reason: str
) -> None:
    url = url_path.format(port=server.httpd.server_port)
    transport = WebhookTransport(clock=lambda: CLOCK_T)

    outcome = transport.send({"url": url, "secret": SECRET}, ALERT_MESSAGE)

    assert outcome.status == "permanent"
    assert reason in outcome.detail
    assert server.requests == []


def test_webhook_push_without_secret_is_permanent(server: LocalServer) -> None:
    outcome = webhook().send({"url": server.url}, ALERT_MESSAGE)
    assert outcome.status == "permanent"
    assert server.requests == []


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://93.184.216.34/hook", None),
        ("https://[2606:4700:4700::1111]/hook", None),
        ("http://93.184.216.34/hook", "must be https"),
        ("ftp://93.184.216.34/hook", "must be https"),
        ("https:///hook", "no host"),
        ("https://93.184.216.34:99999/", "not a valid URL"),
        ("https://10.1.2.3/hook", "private address 10.1.2.3"),
        ("https://192.168.0.10/", "private address"),
        ("https://127.0.0.1/hook", "loopback address 127.0.0.1"),
        ("https://localhost/hook", "loopback address"),
        ("https://169.254.169.254/latest/meta-data", "link-local address 169.254.169.254"),
        ("https://[::1]/hook", "loopback address ::1"),
        ("https://[fc00::1]/hook", "private address fc00::1"),
        ("https://[::ffff:10.0.0.1]/hook", "private address 10.0.0.1"),
        ("https://[2002:a9fe:a9fe::1]/hook", "link-local address 169.254.169.254"),
        ("https://[2002:0a00:0001::1]/hook", "private address 10.0.0.1"),
        ("https://0.0.0.0/hook", "unspecified address"),
        ("https://224.0.0.1/hook", "multicast address"),
        ("https://100.64.0.1/hook", "non-public address"),
        ("https://nonexistent.invalid/hook", "does not resolve"),
    ],
)
def test_check_webhook_url(url: str, refusal: str | None) -> None:
    reason = check_webhook_url(url, allow_private=False)
    if refusal is None:
        assert reason is None
    else:
        assert reason is not None and refusal in reason


def test_check_webhook_url_allow_private_accepts_http_and_local() -> None:
    assert check_webhook_url("http://127.0.0.1:8080/hook", allow_private=True) is None
    assert check_webhook_url("https://10.0.0.5/hook", allow_private=True) is None
    assert "https" in check_webhook_url("ftp://127.0.0.1/", allow_private=True)


def test_verify_signature_rejects_tampering_staleness_and_garbage() -> None:
    body = expected_json(ALERT_MESSAGE)
    header = signature_header(SECRET, body, t=1_800_000_000)
    assert verify_signature(SECRET, header, body, now=1_800_000_299)
    assert not verify_signature(SECRET, header, body + b" ", now=1_800_000_000)
    assert not verify_signature("wrong", header, body, now=1_800_000_000)
    assert not verify_signature(SECRET, header, body, now=1_800_000_301)  # stale
    assert not verify_signature(SECRET, header, body, now=1_799_999_000)  # from the future
    assert not verify_signature(SECRET, "v1=abc", body, now=1_800_000_000)
    assert not verify_signature(SECRET, "t=x,v1=abc", body, now=1_800_000_000)
    assert not verify_signature(SECRET, "", body, now=1_800_000_000)
    # Several v1 values (a secret being rotated): one matching is enough.
    rotated = header.replace("v1=", "v1=" + "0" * 64 + ",v1=")
    assert verify_signature(SECRET, rotated, body, now=1_800_000_000)


# -- FCM --------------------------------------------------------------------------------------

PROJECT = "blockwatch-demo"
TOKEN = "fcm-registration-token:APA91b-xyz"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fcm(server: LocalServer, rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> Iterator[FcmTransport]:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "key-1",
                "private_key": pem,
                "client_email": f"push@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": f"{server.url}/token",
            }
        )
    )
    transport = FcmTransport.from_service_account_file(
        key_file, base_url=server.url, clock=lambda: NOW
    )
    yield transport
    transport.close()


def token_answer(token: str) -> Scripted:
    return json_answer(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})


def fcm_error(status: int, code: str, message: str, details: list | None = None, **headers: str):
    error = {"code": status, "message": message, "status": code, "details": details or []}
    return json_answer(status, {"error": error}, **headers)


def fcm_detail(error_code: str) -> dict:
    return {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}


def expected_fcm_data(message: Message) -> dict:
    return {
        "kind": message.kind,
        "alert_id": ALERT["id"],
        "group_id": ALERT["group_id"],
        "category": "burglary",
        "severity": "severe",
        "idempotency_key": message.idempotency_key,
        "alert": json.dumps(message.alert, separators=(",", ":"), ensure_ascii=False),
    }


def test_fcm_gets_a_token_then_sends_the_v1_message(
    server: LocalServer, fcm: FcmTransport, rsa_key: rsa.RSAPrivateKey
) -> None:
    server.script(
        token_answer("tok-1"), json_answer(200, {"name": f"projects/{PROJECT}/messages/1"})
    )

    outcome = fcm.send({"token": TOKEN}, ALERT_MESSAGE)

    assert outcome == Outcome("delivered", "HTTP 200")
    token_request, send_request = server.requests
    # The OAuth2 JWT-bearer grant (RFC 7523), signed with the service account's key.
    assert (token_request.method, token_request.path) == ("POST", "/token")
    form = parse_qs(token_request.body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    [assertion] = form["assertion"]
    signing_input, _, signature = assertion.rpartition(".")
    rsa_key.public_key().verify(
        b64url_decode(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    claims = json.loads(b64url_decode(signing_input.split(".")[1]))
    assert claims["iss"] == f"push@{PROJECT}.iam.gserviceaccount.com"
    # google-auth always names Google's token endpoint as the audience, whatever token_uri is.
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"

    assert (send_request.method, send_request.path) == (
        "POST",
        f"/v1/projects/{PROJECT}/messages:send",
    )
    assert send_request.headers["authorization"] == "Bearer tok-1"
    assert send_request.headers["content-type"].startswith("application/json")
    assert json.loads(send_request.body) == {
        "message": {
            "token": TOKEN,
            "notification": {"title": ALERT["title"], "body": ALERT["body"]},
            "data": expected_fcm_data(ALERT_MESSAGE),
            "android": {
                "priority": "high",
                "notification": {"tag": ALERT["id"]},
                "ttl": f"{int(EXPIRES - NOW)}s",
            },
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-collapse-id": ALERT["id"],
                    "apns-expiration": str(int(EXPIRES)),
                },
                "payload": {
                    "aps": {
                        "sound": "default",
                        "thread-id": ALERT["group_id"],
                        "interruption-level": "time-sensitive",
                    }
                },
            },
        }
    }

    # The token is cached: a second send asks for none.
    server.script(json_answer(200, {"name": f"projects/{PROJECT}/messages/2"}))
    assert fcm.send({"token": TOKEN}, ALERT_MESSAGE).status == "delivered"
    assert [r.path for r in server.requests[2:]] == [f"/v1/projects/{PROJECT}/messages:send"]


def test_fcm_cancel_replaces_the_alert_notification(server: LocalServer, fcm: FcmTransport) -> None:
    server.script(token_answer("tok-1"), json_answer(200, {"name": "m"}))

    assert fcm.send({"token": TOKEN}, CANCEL_MESSAGE).status == "delivered"

    assert json.loads(server.requests[1].body)["message"] == {
        "token": TOKEN,
        "notification": {
            "title": f"Cancelled: {ALERT['title']}",
            "body": "This alert has been withdrawn.",
        },
        "data": expected_fcm_data(CANCEL_MESSAGE),
        "android": {
            "priority": "high",
            "notification": {"tag": ALERT["id"]},
            "ttl": f"{int(EXPIRES - NOW)}s",
        },
        "apns": {
            "headers": {
                "apns-priority": "10",
                "apns-collapse-id": ALERT["id"],
                "apns-expiration": str(int(EXPIRES)),
            },
            "payload": {
                "aps": {
                    "thread-id": ALERT["group_id"],
                    "content-available": 1,
                    "interruption-level": "passive",
                }
            },
        },
    }


def test_fcm_normal_priority_below_severe() -> None:
    minor = Message("alert", {**ALERT, "severity": "minor"}, "k")
    message = fcm_message(TOKEN, minor, now=NOW)["message"]
    assert message["android"]["priority"] == "normal"
    assert message["apns"]["headers"]["apns-priority"] == "5"
    assert message["apns"]["payload"]["aps"]["interruption-level"] == "active"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            fcm_error(
                404, "NOT_FOUND", "Requested entity was not found.", [fcm_detail("UNREGISTERED")]
            ),
            Outcome("permanent", "UNREGISTERED"),
        ),
        (
            fcm_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                [fcm_detail("INVALID_ARGUMENT")],
            ),
            Outcome(
                "permanent",
                "HTTP 400 INVALID_ARGUMENT: "
                "The registration token is not a valid FCM registration token",
            ),
        ),
        (
            fcm_error(
                403, "PERMISSION_DENIED", "SenderId mismatch", [fcm_detail("SENDER_ID_MISMATCH")]
            ),
            Outcome("permanent", "SENDER_ID_MISMATCH"),
        ),
        (
            # A bad field of our own message is no reason to drop the device.
            fcm_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "message.data[0].value"}],
                    }
                ],
            ),
            Outcome(
                "retry",
                "HTTP 400 INVALID_ARGUMENT: "
                "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            ),
        ),
        (
            fcm_error(
                503,
                "UNAVAILABLE",
                "The service is unavailable.",
                [fcm_detail("UNAVAILABLE")],
                **{"Retry-After": "30"},
            ),
            Outcome("retry", "HTTP 503 UNAVAILABLE", 30.0),
        ),
        (
            fcm_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded.",
                [fcm_detail("QUOTA_EXCEEDED")],
                **{"Retry-After": "60"},
            ),
            Outcome("retry", "HTTP 429 QUOTA_EXCEEDED", 60.0),
        ),
        (fcm_error(500, "INTERNAL", "Internal error."), Outcome("retry", "HTTP 500 INTERNAL")),
        (Scripted(502, body=b"<html>bad gateway</html>"), Outcome("retry", "HTTP 502")),
        (
            fcm_error(
                403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied"
            ),
            Outcome(
                "retry",
                "HTTP 403 PERMISSION_DENIED: Permission 'cloudmessaging.messages.create' denied",
            ),
        ),
    ],
)
def test_fcm_errors(
    server: LocalServer, fcm: FcmTransport, answer: Scripted, expected: Outcome
) -> None:
    server.script(token_answer("tok-1"), answer)
    assert fcm.send({"token": TOKEN}, ALERT_MESSAGE) == expected


def test_fcm_refreshes_the_token_once_on_401(server: LocalServer, fcm: FcmTransport) -> None:
    server.script(
        token_answer("tok-1"),
        fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
        token_answer("tok-2"),
        json_answer(200, {"name": "m"}),
    )

    assert fcm.send({"token": TOKEN}, ALERT_MESSAGE) == Outcome("delivered", "HTTP 200")

    paths = [r.path for r in server.requests]
    send_path = f"/v1/projects/{PROJECT}/messages:send"
    assert paths == ["/token", send_path, "/token", send_path]
    assert server.requests[1].headers["authorization"] == "Bearer tok-1"
    assert server.requests[3].headers["authorization"] == "Bearer tok-2"


def test_fcm_401_twice_is_a_retry_not_a_dead_device(server: LocalServer, fcm: FcmTransport) -> None:
    unauthenticated = fcm_error(401, "UNAUTHENTICATED", "Bad credentials.")
    server.script(token_answer("tok-1"), unauthenticated, token_answer("tok-2"), unauthenticated)

    outcome = fcm.send({"token": TOKEN}, ALERT_MESSAGE)

    assert outcome.status == "retry"
    assert len(server.requests) == 4


def test_fcm_token_endpoint_refusal_is_a_retry(server: LocalServer, fcm: FcmTransport) -> None:
    server.script(json_answer(400, {"error": "invalid_grant", "error_description": "revoked"}))

    outcome = fcm.send({"token": TOKEN}, ALERT_MESSAGE)

    assert outcome.status == "retry"
    assert "RefreshError" in outcome.detail
    assert [r.path for r in server.requests] == ["/token"]


def test_fcm_connection_refused_is_a_retry(
    server: LocalServer, fcm: FcmTransport, closed_port_url: str
) -> None:
    refused = FcmTransport(
        project_id=PROJECT, credentials=fcm.credentials, base_url=closed_port_url
    )
    server.script(token_answer("tok-1"))

    outcome = refused.send({"token": TOKEN}, ALERT_MESSAGE)

    assert outcome.status == "retry"
    assert "ConnectError" in outcome.detail


def test_fcm_without_a_token_is_permanent(server: LocalServer, fcm: FcmTransport) -> None:
    assert fcm.send({}, ALERT_MESSAGE).status == "permanent"
    assert server.requests == []


def test_fcm_cuts_a_long_body_to_fit_4kb() -> None:
    body = "Ärger im Block — " * 235  # 3995 characters, most of 5 KB in UTF-8
    long = Message("alert", {**ALERT, "body": body}, "k")

    message = fcm_message(TOKEN, long, now=NOW)["message"]

    probe = {"notification": message["notification"], "data": message["data"]}
    size = len(json.dumps(probe, separators=(",", ":"), ensure_ascii=False).encode())
    assert FCM_PAYLOAD_BUDGET_BYTES - 50 < size <= FCM_PAYLOAD_BUDGET_BYTES
    assert message["data"]["truncated"] == "true"
    shown = json.loads(message["data"]["alert"])
    assert shown["body"].endswith("…") and body.startswith(shown["body"][:-1])
    assert {**shown, "body": body} == long.alert  # nothing else changed
    assert len(message["notification"]["body"]) == 300
    assert "truncated" not in fcm_message(TOKEN, ALERT_MESSAGE, now=NOW)["message"]["data"]


# -- Web Push ---------------------------------------------------------------------------------

SUBJECT = "mailto:push-admin@blockwatch.example"


@dataclass
class Subscriber:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    push: dict


@pytest.fixture(scope="module")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def subscriber(server: LocalServer) -> Subscriber:
    private_key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    push = {
        "endpoint": f"{server.url}/push/sub-1",
        "keys": {"p256dh": b64url_encode(public), "auth": b64url_encode(auth)},
    }
    return Subscriber(private_key, auth, push)


def raw_key(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))


@pytest.fixture
def webpush(vapid_key: ec.EllipticCurvePrivateKey) -> Iterator[WebPushTransport]:
    transport = WebPushTransport(
        vapid_private_key=raw_key(vapid_key),
        vapid_subject=SUBJECT,
        allow_private=True,
        clock=lambda: NOW,
    )
    yield transport
    transport.close()


def decrypt(subscriber: Subscriber, body: bytes) -> bytes:
    return http_ece.decrypt(
        body, private_key=subscriber.private_key, auth_secret=subscriber.auth, version="aes128gcm"
    )


def check_vapid(header: str, *, public_key: ec.EllipticCurvePublicKey, audience: str) -> None:
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    fields = dict(item.strip().split("=", 1) for item in params.split(","))
    expected_k = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert b64url_decode(fields["k"]) == expected_k
    signing_input, _, signature = fields["t"].rpartition(".")
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    jwt_header, claims = (json.loads(b64url_decode(part)) for part in signing_input.split("."))
    assert jwt_header["alg"] == "ES256"
    assert claims["aud"] == audience
    assert claims["sub"] == SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600  # RFC 8292: at most 24 h


def test_webpush_sends_an_encrypted_vapid_signed_message(
    server: LocalServer,
    webpush: WebPushTransport,
    subscriber: Subscriber,
    vapid_key: ec.EllipticCurvePrivateKey,
) -> None:
    server.script(Scripted(201, {"Location": f"{server.url}/message/1"}))

    outcome = webpush.send(subscriber.push, ALERT_MESSAGE)

    assert outcome == Outcome("delivered", "HTTP 201")
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/push/sub-1")
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["ttl"] == "86400"
    assert request.headers["urgency"] == "high"
    assert request.headers["topic"] == ALERT["id"].replace("-", "")
    check_vapid(
        request.headers["authorization"], public_key=vapid_key.public_key(), audience=server.url
    )
    assert decrypt(subscriber, request.body) == expected_json(ALERT_MESSAGE)


def test_webpush_cancel_shares_the_topic_and_minor_is_normal_urgency(
    server: LocalServer, webpush: WebPushTransport, subscriber: Subscriber
) -> None:
    minor = {**ALERT, "severity": "minor"}
    webpush.send(subscriber.push, Message("alert", minor, "k-1"))
    webpush.send(subscriber.push, Message("cancel", minor, "k-2"))

    alert_request, cancel_request = server.requests
    assert alert_request.headers["urgency"] == cancel_request.headers["urgency"] == "normal"
    assert alert_request.headers["topic"] == cancel_request.headers["topic"]
    assert json.loads(decrypt(subscriber, cancel_request.body))["kind"] == "cancel"


def test_webpush_ttl_ends_with_the_alert(
    server: LocalServer, webpush: WebPushTransport, subscriber: Subscriber
) -> None:
    soon = {**ALERT, "expires_at": "2026-11-23T19:05:05Z"}  # an hour after NOW
    webpush.send(subscriber.push, Message("alert", soon, "k"))
    assert server.requests[0].headers["ttl"] == "3600"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Scripted(201), Outcome("delivered", "HTTP 201")),
        (Scripted(204), Outcome("delivered", "HTTP 204")),
        (Scripted(410), Outcome("permanent", "HTTP 410")),
        (Scripted(404), Outcome("permanent", "HTTP 404")),
        (Scripted(413), Outcome("permanent", "HTTP 413")),
        (Scripted(429, {"Retry-After": "12"}), Outcome("retry", "HTTP 429", 12.0)),
        (Scripted(500), Outcome("retry", "HTTP 500")),
        (Scripted(403), Outcome("retry", "HTTP 403")),
    ],
)
def test_webpush_answers(
    server: LocalServer,
    webpush: WebPushTransport,
    subscriber: Subscriber,
    answer: Scripted,
    expected: Outcome,
) -> None:
    server.script(answer)
    assert webpush.send(subscriber.push, ALERT_MESSAGE) == expected


def test_webpush_does_not_follow_a_redirect(
    server: LocalServer, webpush: WebPushTransport, subscriber: Subscriber
) -> None:
    server.script(Scripted(302, {"Location": f"{server.url}/elsewhere"}))

    assert webpush.send(subscriber.push, ALERT_MESSAGE) == Outcome("retry", "HTTP 302")
    assert [r.path for r in server.requests] == ["/push/sub-1"]


def test_webpush_timeout_and_refusal_are_retries(
    server: LocalServer,
    vapid_key: ec.EllipticCurvePrivateKey,
    subscriber: Subscriber,
    closed_port_url: str,
) -> None:
    transport = WebPushTransport(
        vapid_private_key=raw_key(vapid_key),
        vapid_subject=SUBJECT,
        timeout_s=0.2,
        allow_private=True,
    )
    server.script(Scripted(201, delay_s=5))
    assert transport.send(subscriber.push, ALERT_MESSAGE) == Outcome("retry", "timeout")

    refused = {**subscriber.push, "endpoint": f"{closed_port_url}/push/sub-1"}
    outcome = transport.send(refused, ALERT_MESSAGE)
    assert outcome.status == "retry"
    assert "ConnectionError" in outcome.detail


def test_webpush_cuts_a_long_body_to_fit_one_record(
    server: LocalServer, webpush: WebPushTransport, subscriber: Subscriber
) -> None:
    body = "Ärger im Block — " * 235
    webpush.send(subscriber.push, Message("alert", {**ALERT, "body": body}, "k"))

    plaintext = decrypt(subscriber, server.requests[0].body)
    assert WEBPUSH_MAX_PLAINTEXT_BYTES - 10 < len(plaintext) <= WEBPUSH_MAX_PLAINTEXT_BYTES
    payload = json.loads(plaintext)
    assert payload["truncated"] is True
    assert body.startswith(payload["alert"]["body"][:-1])
    assert len(server.requests[0].body) <= 4096


def test_webpush_accepts_a_pem_vapid_key(
    server: LocalServer, vapid_key: ec.EllipticCurvePrivateKey, subscriber: Subscriber
) -> None:
    pem = vapid_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    transport = WebPushTransport(vapid_private_key=pem, vapid_subject=SUBJECT, allow_private=True)

    assert transport.send(subscriber.push, ALERT_MESSAGE).status == "delivered"
    check_vapid(
        server.requests[0].headers["authorization"],
        public_key=vapid_key.public_key(),
        audience=server.url,
    )


def test_webpush_refuses_bad_subscriptions_without_sending(
    server: LocalServer, vapid_key: ec.EllipticCurvePrivateKey, subscriber: Subscriber
) -> None:
    strict = WebPushTransport(vapid_private_key=raw_key(vapid_key), vapid_subject=SUBJECT)
    outcome = strict.send(subscriber.push, ALERT_MESSAGE)  # http://127.0.0.1 without allow_private
    assert outcome.status == "permanent" and "https" in outcome.detail

    lenient = WebPushTransport(
        vapid_private_key=raw_key(vapid_key), vapid_subject=SUBJECT, allow_private=True
    )
    bad_point = {**subscriber.push, "keys": {**subscriber.push["keys"], "p256dh": "AAAA"}}
    bad_auth = {**subscriber.push, "keys": {**subscriber.push["keys"], "auth": "AAAA"}}
    for push in (bad_point, bad_auth, {"endpoint": subscriber.push["endpoint"]}):
        assert lenient.send(push, ALERT_MESSAGE).status == "permanent"
    assert server.requests == []


def test_webpush_refuses_a_bad_vapid_configuration(vapid_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="VAPID"):
        WebPushTransport(vapid_private_key=raw_key(vapid_key), vapid_subject="push-admin")
    with pytest.raises(ValueError, match="VAPID"):
        WebPushTransport(vapid_private_key="not a key", vapid_subject=SUBJECT)


def test_the_body_is_the_same_for_webhook_and_web_push() -> None:
    assert payload_bytes(ALERT_MESSAGE) == expected_json(ALERT_MESSAGE)
