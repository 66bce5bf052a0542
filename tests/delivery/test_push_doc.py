"""docs/push.md shows what the code does: its FCM, Web Push and webhook examples are what
``blockwatch.delivery.transports`` makes of the sample alert, its registration example registers,
and both webhook receivers accept exactly what the server signs.

Examples are the fenced blocks right after a ``<!-- example: NAME key=value ... -->`` marker."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from api import create_app
from blockwatch.delivery.transports import (
    Message,
    fcm_message,
    payload_bytes,
    signature_header,
    verify_signature,
)
from tests.ci import skip_unless_ci

DOC = Path(__file__).resolve().parents[2] / "docs" / "push.md"
MARKER = re.compile(r"<!-- example: (?P<name>[\w-]+)(?P<attrs>[^\n]*?) -->\n```[a-z]*\n"
                    r"(?P<code>.*?)\n```", re.DOTALL)
SECRET = "whsec-doc-example-0123456789"


def _examples() -> dict[str, tuple[dict[str, str], str]]:
    found = {}
    for match in MARKER.finditer(DOC.read_text(encoding="utf-8")):
        attrs = dict(item.partition("=")[::2] for item in match["attrs"].split())
        assert match["name"] not in found, f"two examples named {match['name']}"
        found[match["name"]] = (attrs, match["code"])
    return found


EXAMPLES = _examples()


def _json(name: str) -> tuple[dict[str, str], dict]:
    attrs, code = EXAMPLES[name]
    return attrs, json.loads(code)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_the_doc_has_every_example():
    assert set(EXAMPLES) == {
        "register-request", "register-response", "sample-alert", "fcm-alert", "fcm-cancel",
        "payload-alert", "signature", "receiver-python", "receiver-node",
    }


@pytest.mark.parametrize("kind", ["alert", "cancel"])
def test_the_fcm_examples_are_what_fcm_message_makes(kind):
    _, alert = _json("sample-alert")
    attrs, shown = _json(f"fcm-{kind}")
    if kind == "cancel":  # the alert as it is when the cancellation goes out
        alert = {**alert, "status": "cancelled", "version": alert["version"] + 1}
        assert json.loads(shown["message"]["data"]["alert"]) == alert
    key = f"{alert['id']}:{attrs['device']}:{kind}"
    made = fcm_message(attrs["token"], Message(kind, alert, key), now=_ts(attrs["now"]))
    assert shown == made


def test_the_payload_example_is_what_webhooks_and_web_push_get():
    _, alert = _json("sample-alert")
    attrs, shown = _json("payload-alert")
    key = f"{alert['id']}:{attrs['device']}:alert"
    assert shown == json.loads(payload_bytes(Message("alert", alert, key)))
    # The Topic the doc names is the alert id without its dashes.
    assert f"`{alert['id'].replace('-', '')}`" in DOC.read_text(encoding="utf-8")


def test_the_signature_example_is_what_the_server_sends():
    attrs, code = EXAMPLES["signature"]
    header = signature_header(attrs["secret"], attrs["body"].encode(), t=int(attrs["t"]))
    assert code.strip() == f"Blockwatch-Signature: {header}"


def test_the_registration_example_registers(db):
    _, request = _json("register-request")
    _, shown = _json("register-response")
    client = create_app({"TESTING": True, "database": db,
                         "BLOCKWATCH_RATE_LIMIT_WRITES": "off"}).test_client()
    response = client.post("/v1/devices", json=request)
    assert response.status_code == 201, response.get_data(as_text=True)
    got = response.get_json()
    assert list(got) == list(shown)
    assert got["subscription"] == shown["subscription"]
    assert (got["platform"], got["active"]) == (shown["platform"], shown["active"])
    assert got["device_secret"].startswith("bwd_") and shown["device_secret"].startswith("bwd_")
    assert len(got["device_secret"]) == len(shown["device_secret"])


# -- the webhook receivers ------------------------------------------------------------------
def _signed(body: bytes, *, t: int, secret: str = SECRET) -> str:
    return signature_header(secret, body, t=t)


def _cases(now: int) -> list[tuple[str, bytes]]:
    """(header, body) pairs a receiver must judge as the server's verify_signature does."""
    body = payload_bytes(Message("alert", {"id": "a1", "title": "Zürich ☂"}, "a1:d1:alert"))
    good = _signed(body, t=now - 30)
    return [
        (good, body),
        (_signed(body, t=now - 299), body),
        (_signed(body, t=now + 120), body),
        (_signed(body, t=now - 301), body),  # too old
        (_signed(body, t=now + 400), body),  # too far ahead
        (_signed(body, t=now, secret="another-secret-000"), body),
        (good, body + b" "),  # the body changed
        (good.replace("t=", "t=1"), body),
        (good.split(",")[0], body),  # no v1
        (f"t={now},v1=" + "0" * 64 + "," + good.split(",")[1], body),  # rotation: 2nd matches
        ("", body),
        ("garbage", body),
        (f"t={now},v1=zz", body),
        (f"t=x{now},{good.split(',')[1]}", body),
    ]


def test_the_python_receiver_accepts_what_the_server_signs(monkeypatch, capsys):
    monkeypatch.setenv("BLOCKWATCH_WEBHOOK_SECRET", SECRET)
    namespace: dict = {"__name__": "blockwatch_doc_receiver"}
    exec(compile(EXAMPLES["receiver-python"][1], "docs/push.md receiver-python", "exec"),
         namespace)
    now = 1_800_000_000
    for header, body in _cases(now):
        expected = verify_signature(SECRET, header, body, now=now)
        assert namespace["signature_ok"](SECRET, header, body, now=now) is expected, header
    client = namespace["app"].test_client()
    body = payload_bytes(Message("alert", {"id": "a1", "title": "Break-in"}, "a1:d1:alert"))

    def post(header: str):
        return client.post("/blockwatch/hook", data=body, content_type="application/json",
                           headers={"Blockwatch-Signature": header,
                                    "Idempotency-Key": "a1:d1:alert"})

    assert post(_signed(body, t=int(time.time()) - 3600)).status_code == 401
    assert post(_signed(body, t=int(time.time()))).status_code == 204
    assert post(_signed(body, t=int(time.time()))).status_code == 204  # a retry: deduped
    assert capsys.readouterr().out.count("ALERT Break-in") == 1


def _node() -> str:
    """The Node.js executable: missing, the test skips with a reason, except on CI
    (CI=true), where the machine has it and a skip would hide a broken example."""
    node = shutil.which("node")
    if node is None:
        skip_unless_ci(
            "Node.js is not installed: the Node receiver example of docs/push.md is unrun"
        )
    return node


def test_the_node_receiver_accepts_what_the_server_signs(tmp_path):
    node = _node()
    receiver = tmp_path / "receiver.js"
    receiver.write_text(EXAMPLES["receiver-node"][1], encoding="utf-8")
    now = 1_800_000_000
    cases = _cases(now)
    script = (
        "const { signatureOk } = require(process.argv[1]);\n"
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "console.log(JSON.stringify(cases.map(([h, b]) => "
        f"signatureOk('{SECRET}', h, Buffer.from(b, 'base64'), {now}))));\n"
    )
    stdin = json.dumps([[header, base64.b64encode(body).decode()] for header, body in cases])
    done = subprocess.run([node, "-e", script, str(receiver)], input=stdin, text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    expected = [verify_signature(SECRET, header, body, now=now) for header, body in cases]
    assert json.loads(done.stdout) == expected
    assert any(expected) and not all(expected)

