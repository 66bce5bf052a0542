"""Kinto on PostgreSQL as the peer of the sync benchmark: install it, run it, load it, pull it.

What this module owns:

* **Kinto's own virtualenv**, ``bench/.kinto-venv`` (gitignored). Kinto pins its own world
  (SQLAlchemy through ``kinto[postgresql]``, psycopg2, Pyramid, waitress), which must not meet
  ours (SQLAlchemy 2, psycopg 3), so it never goes into ``.venv``. ``KINTO_PIP_SPEC`` below is
  the one definition of what gets installed; ``make kinto-venv`` runs
  ``python bench/kinto_peer.py --setup``, and :func:`measure_kinto` calls the same
  :func:`ensure_venv` when the venv is missing or was built from another spec.
* **One Kinto server for one measurement**, run the way Kinto's own container image runs it:
  ``kinto migrate`` then ``kinto start`` (pserve + waitress, one process, 4 threads) on
  127.0.0.1 and a free port, in its own process group, stopped on the way out, errors
  included. Storage, permission and cache all use Kinto's PostgreSQL backends, in a dedicated
  database (``kinto_bench`` by default) created next to the one ``pg_url`` names, dropped and
  recreated at the start of a run and dropped at its end. Auth is basicauth; the settings that
  differ from Kinto's defaults are in :func:`_write_ini` and each says why.
* **The measurement.** Bucket and collection are created through the API; the N records go
  into ``/buckets/b/collections/c`` either as a bulk SQL insert of exactly the rows Kinto's
  own ``POST`` writes (``objects`` row with ``last_modified`` from Kinto's trigger, plus the
  owner's ``write`` ACE; the default, seconds for 50,000) or through ``POST /v1/batch``
  (``load="api"``, ``batch_max_requests`` raised; 7 to 25 ms a record on 2 cores, over 20
  minutes for 50,000). ``VACUUM (ANALYZE)`` follows, so autovacuum does not start during a
  pull; none of this is timed as a pull. Then, for each page size, a full pull the way a
  Kinto client syncs from scratch: ``GET .../records?_sort=last_modified&_limit=<page>`` on
  one keep-alive connection, following ``Next-Page`` until there is none, every body read and
  parsed with ``json.loads`` (a client has to), every record id counted. Pulls are
  interleaved over the page sizes, ``repeats`` rounds after one warm-up pull; per page size
  the median pull is reported, with the server's own time for it (the sum of its requests'
  ``t``, below).
  Then the no-change pull:
  ``?_since=<collection ETag>&_sort=last_modified&_limit=<largest page>``, which must answer
  0 records, timed by the client (best of many) and by the server (the ``t`` field of Kinto's
  ``request.summary`` log line, in whole milliseconds).

Bytes are response **body** bytes, asked with ``Accept-Encoding: identity``. Neither Kinto nor
waitress compresses (no ``Content-Encoding`` comes back, which the result records), so these
are raw JSON bytes; ``gzip_bytes_per_record`` is what a gzip-ing proxy would send instead
(each page body compressed here at level 6, outside the timed loop).

Only the standard library is used on our side (``http.client``), so the standalone run works
from any Python 3.11::

    python bench/kinto_peer.py --setup                 # only create bench/.kinto-venv
    python bench/kinto_peer.py --records 50000         # a small table on stdout
    python bench/kinto_peer.py --records 50000 --json  # the result dict as JSON

From another bench (``bench/`` is on ``sys.path``)::

    from kinto_peer import measure_kinto
    result = measure_kinto(records, [100, 500, 1000, 5000])
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import http.client
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

# The one definition of what the Kinto venv holds. Pinned so that numbers stay comparable
# between runs; bump it on purpose (the venv is rebuilt when this string changes).
KINTO_PIP_SPEC: tuple[str, ...] = ("kinto[postgresql]==26.5.0",)

BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR / ".kinto-venv"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_DB_NAME = "kinto_bench"
DEFAULT_PAGE_SIZES = (100, 500, 1000, 5000)

BUCKET = "b"
COLLECTION = "c"
RECORDS_PATH = f"/v1/buckets/{BUCKET}/collections/{COLLECTION}/records"
USER, PASSWORD = "bench", "bench"
BATCH_SIZE = 500  # sub-requests per POST /batch; kinto.batch_max_requests is set to this
NO_CHANGE_RUNS = 30
_NO_CHANGE_AGENT = "kinto-peer no-change"
_SPEC_STAMP = ".bench-pip-spec"


# --- the venv -------------------------------------------------------------------------------


def _venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def ensure_venv(venv: Path = VENV_DIR, python: str = sys.executable) -> Path:
    """Create ``venv`` with ``KINTO_PIP_SPEC`` installed unless it is already there; return it.

    The venv is rebuilt in place (``pip install`` of the spec) when it was made from another
    spec. Uses ``python -m venv`` with the interpreter running this module (a venv's Python
    creates a venv of its base interpreter).
    """
    venv = Path(venv)
    stamp = venv / _SPEC_STAMP
    wanted = "\n".join(KINTO_PIP_SPEC)
    kinto = _venv_bin(venv, "kinto")
    if kinto.exists() and stamp.exists() and stamp.read_text() == wanted:
        return venv
    if not _venv_bin(venv, "python").exists():
        _log(f"creating {venv}")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    _log(f"installing {' '.join(KINTO_PIP_SPEC)} into {venv}")
    subprocess.run(
        [str(_venv_bin(venv, "python")), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", *KINTO_PIP_SPEC],
        check=True,
    )
    stamp.write_text(wanted)
    return venv


# --- the database ---------------------------------------------------------------------------

# Run with the Kinto venv's Python, which always has psycopg2 (ours may not have a driver).
_RESET_DB_SCRIPT = """
import sys, psycopg2
admin_url, name, create = sys.argv[1], sys.argv[2], sys.argv[3] == "create"
conn = psycopg2.connect(admin_url)
conn.autocommit = True
cur = conn.cursor()
cur.execute(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = %s AND pid <> pg_backend_pid()",
    (name,),
)
cur.execute('DROP DATABASE IF EXISTS "%s"' % name)
if create:
    cur.execute("CREATE DATABASE \\"%s\\" ENCODING 'UTF8' TEMPLATE template0" % name)
    cur.execute("ALTER DATABASE \\"%s\\" SET TIMEZONE TO 'UTC'" % name)
conn.close()
"""


# After loading: what autovacuum would have done to a long-lived table (visibility map, hint
# bits, planner statistics), so that it does not start in the middle of a timed pull.
_VACUUM_SCRIPT = """
import sys, psycopg2
conn = psycopg2.connect(sys.argv[1])
conn.autocommit = True
conn.cursor().execute("VACUUM (ANALYZE) objects, timestamps, access_control_entries")
conn.close()
"""


def _database_url(pg_url: str, db_name: str) -> str:
    """``pg_url`` with its database replaced by ``db_name`` (user, host, port and query kept)."""
    parts = urlsplit(pg_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db_name, parts.query, ""))


def _reset_database(venv: Path, pg_url: str, db_name: str, *, create: bool) -> None:
    if not db_name.replace("_", "").isalnum():
        raise ValueError(f"refusing an unusual database name: {db_name!r}")
    subprocess.run(
        [str(_venv_bin(venv, "python")), "-c", _RESET_DB_SCRIPT, pg_url, db_name,
         "create" if create else "drop"],
        check=True,
    )


# --- the server -----------------------------------------------------------------------------


def _write_ini(path: Path, storage_url: str, max_page: int) -> None:
    """Kinto's production setup (``kinto init`` + docs/configuration/production.rst) with
    PostgreSQL everywhere; every setting that differs from Kinto's defaults says why."""
    path.write_text(
        f"""\
[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = %(http_port)s

[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {storage_url}
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {storage_url}
kinto.cache_backend = kinto.core.cache.postgresql
kinto.cache_url = {storage_url}
kinto.userid_hmac_secret = {secrets.token_hex(32)}
multiauth.policies = basicauth
# The bench user creates its own bucket (Kinto's default: nobody may).
kinto.bucket_create_principals = system.Authenticated
# Loading only: sub-requests per POST /batch (Kinto's default is 25).
kinto.batch_max_requests = {BATCH_SIZE}
# kinto.paginate_by stays unset (production.rst suggests 100, which would cap _limit at 100);
# _limit is then capped by storage_max_fetch_size (default 10000), raised if a page is larger.
kinto.storage_max_fetch_size = {max(10000, max_page)}

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = json

[logger_root]
level = INFO
handlers = console

[handler_console]
class = kinto.core.StreamHandlerWithRequestID
args = (sys.stderr,)
level = NOTSET
formatter = json

[formatter_json]
class = kinto.core.JsonLogFormatter
"""
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """``kinto start`` in its own process group, its log (JSON lines) in ``log_path``."""

    def __init__(self, venv: Path, ini: Path, log_path: Path) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(_venv_bin(venv, "kinto")), "start", "--ini", str(ini), "--port", str(self.port)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kinto exited with {self.proc.returncode}:\n{self.log_tail()}")
            # Not listening yet (connection refused) is the normal answer while it starts.
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v1/__heartbeat__")
                ready = conn.getresponse().status == 200
                conn.close()
                if ready:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"kinto not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log_file.close()


def _summaries(log_path: Path) -> Iterator[dict[str, Any]]:
    """The ``request.summary`` records of Kinto's JSON log (other lines are skipped)."""
    with log_path.open(errors="replace") as lines:
        for line in lines:
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("Type") == "request.summary":
                yield entry.get("Fields", {})


# --- the client -----------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class _Client:
    """One keep-alive HTTP/1.1 connection with basic auth; ``agent`` tags the server's log."""

    def __init__(self, port: int, agent: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {token}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": agent,
        }

    def request(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":"), default=_json_default).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=payload, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, resp, data

    def close(self) -> None:
        self.conn.close()


def _create_collection(client: _Client) -> str:
    """Create bucket and collection through the API; return the bench user's principal."""
    for method, path in (
        ("PUT", f"/v1/buckets/{BUCKET}"),
        ("PUT", f"/v1/buckets/{BUCKET}/collections/{COLLECTION}"),
    ):
        status, _, data = client.request(method, path, {"data": {}})
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {status} {data[:500]!r}")
    _, _, hello = client.request("GET", "/v1/")
    return json.loads(hello)["user"]["id"]


def _load_api(client: _Client, records: Sequence[dict[str, Any]]) -> None:
    """``POST /v1/batch`` of ``BATCH_SIZE`` record creations at a time (7 to 25 ms a record
    on 2 cores: Kinto runs each sub-request through the whole Pyramid stack)."""
    defaults = {"method": "POST", "path": RECORDS_PATH.removeprefix("/v1")}
    for start in range(0, len(records), BATCH_SIZE):
        chunk = records[start : start + BATCH_SIZE]
        body = {"defaults": defaults, "requests": [{"body": {"data": r}} for r in chunk]}
        status, _, data = client.request("POST", "/v1/batch", body)
        if status != 200:
            raise RuntimeError(f"POST /v1/batch: {status} {data[:500]!r}")
        bad = [r["status"] for r in json.loads(data)["responses"] if r["status"] != 201]
        if bad:
            raise RuntimeError(f"POST /v1/batch: sub-request statuses {sorted(set(bad))}")


# The rows Kinto's own POST writes (kinto.core.storage.postgresql ``create`` and the permission
# backend's owner ACE), in bulk: ``last_modified`` is left to Kinto's ``bump_timestamp``
# trigger, as in Kinto. Run with the Kinto venv's Python (psycopg2); argv: url, parent, owner,
# JSON-lines file.
_LOAD_SQL_SCRIPT = """
import json, sys, uuid
import psycopg2
from psycopg2.extras import execute_values
url, parent, owner, path = sys.argv[1:5]
objects, aces = [], []
with open(path) as lines:
    for line in lines:
        data = json.loads(line)
        object_id = str(data.pop("id", None) or uuid.uuid4())
        data.pop("last_modified", None)
        objects.append((object_id, parent, json.dumps(data)))
        aces.append((parent + "/records/" + object_id, "write", owner))
conn = psycopg2.connect(url)
with conn, conn.cursor() as cur:
    execute_values(
        cur,
        "INSERT INTO objects (id, parent_id, resource_name, data, deleted) VALUES %s",
        objects,
        template="(%s, %s, 'record', %s::jsonb, FALSE)",
        page_size=1000,
    )
    execute_values(
        cur,
        "INSERT INTO access_control_entries (object_id, permission, principal) VALUES %s",
        aces,
        page_size=1000,
    )
conn.close()
"""


def _load_sql(
    venv: Path, storage_url: str, owner: str, records: Sequence[dict[str, Any]], tmp: Path
) -> None:
    path = tmp / "records.jsonl"
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record, separators=(",", ":"), default=_json_default) + "\n")
    parent = f"/buckets/{BUCKET}/collections/{COLLECTION}"
    subprocess.run(
        [str(_venv_bin(venv, "python")), "-c", _LOAD_SQL_SCRIPT, storage_url, parent, owner,
         str(path)],
        check=True,
    )
    path.unlink()


def _records_url(limit: int, since: str | None = None) -> str:
    params = {"_sort": "last_modified", "_limit": str(limit)}
    if since is not None:
        params = {"_since": since, **params}
    return f"{RECORDS_PATH}?{urlencode(params)}"


def _pull(port: int, page: int, agent: str) -> dict[str, Any]:
    """A full pull from scratch: the first page, then ``Next-Page`` until there is none."""
    client = _Client(port, agent)
    bodies: list[bytes] = []
    ids: set[str] = set()
    encodings: set[str] = set()
    etag = None
    path: str | None = _records_url(page)
    try:
        started = time.perf_counter()
        while path is not None:
            status, resp, data = client.request("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {data[:500]!r}")
            bodies.append(data)
            ids.update(r["id"] for r in json.loads(data)["data"])
            etag = etag or resp.getheader("ETag")
            encodings.add(resp.getheader("Content-Encoding") or "identity")
            next_page = resp.getheader("Next-Page")
            path = None
            if next_page:
                parts = urlsplit(next_page)
                path = f"{parts.path}?{parts.query}"
        seconds = time.perf_counter() - started
    finally:
        client.close()
    return {
        "seconds": seconds,
        "requests": len(bodies),
        "records": len(ids),
        "bytes": sum(map(len, bodies)),
        "bodies": bodies,
        "etag": (etag or "").strip('"'),
        "content_encoding": sorted(encodings),
        "agent": agent,
    }


def _no_change(port: int, since: str, limit: int, runs: int, agent: str) -> list[float]:
    """Client wall seconds of ``runs`` pulls with ``_since=<latest>``, each checked empty."""
    client = _Client(port, agent)
    path = _records_url(limit, since)
    times = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            status, resp, data = client.request("GET", path)
            records = json.loads(data)["data"]
            times.append(time.perf_counter() - started)
            if status != 200 or records or resp.getheader("Next-Page"):
                raise RuntimeError(f"no-change pull gave {status}, {len(records)} records")
    finally:
        client.close()
    return times


# --- the public entry points ----------------------------------------------------------------


def measure_kinto(
    records: list[dict],
    page_sizes: list[int],
    pg_url: str = DEFAULT_PG_URL,
    *,
    repeats: int = 3,
    load: str = "sql",
    db_name: str = DEFAULT_DB_NAME,
    venv: Path = VENV_DIR,
    before_pull: Callable[[int, int], None] | None = None,
) -> dict:
    """Run Kinto on PostgreSQL, load ``records`` into one collection, time full pulls.

    ``pg_url`` names a database to connect to as an administrator; Kinto gets its own
    database ``db_name`` on the same server (dropped and recreated here, dropped at the end).
    Each record is stored as it is (``id`` should be a UUID string; datetimes and UUIDs go as
    strings). ``load="sql"`` bulk-inserts the rows Kinto's POST would write (seconds);
    ``load="api"`` goes through ``POST /v1/batch`` (7 to 25 ms a record here). Each page size
    is pulled ``repeats`` times, interleaved; the median pull is reported. ``before_pull(page,
    round)``, when given, runs right before each timed pull (a caller's own pull of the same
    page size, so both are measured in the same minutes of a noisy machine). Returns::

        {"version": "26.5.0", "records": n, "server": "...", "load": "sql",
         "setup_seconds": ..., "load_seconds": ..., "content_encoding": ["identity"],
         "pulls": {page_size: {"records_per_s", "seconds", "seconds_all", "server_seconds",
                               "requests", "bytes_per_record", "gzip_bytes_per_record"}},
         "no_change_ms": best client ms, "no_change_median_ms": ...,
         "no_change_server_ms": median of the server's own whole-ms timings}
    """
    if not records:
        raise ValueError("measure_kinto needs at least one record")
    if load not in ("sql", "api"):
        raise ValueError(f"load must be 'sql' or 'api', not {load!r}")
    page_sizes = sorted(set(page_sizes))
    started = time.perf_counter()
    venv = ensure_venv(Path(venv))
    setup_seconds = time.perf_counter() - started

    storage_url = _database_url(pg_url, db_name)
    _reset_database(venv, pg_url, db_name, create=True)
    try:
        with tempfile.TemporaryDirectory(prefix="kinto-peer-") as tmp_name:
            tmp = Path(tmp_name)
            ini = tmp / "kinto.ini"
            _write_ini(ini, storage_url, max(page_sizes))
            migrate = subprocess.run(
                [str(_venv_bin(venv, "kinto")), "migrate", "--ini", str(ini)],
                capture_output=True,
                text=True,
            )
            if migrate.returncode:
                raise RuntimeError(f"kinto migrate failed:\n{migrate.stdout}{migrate.stderr}")
            server = _Server(venv, ini, tmp / "kinto.log")
            try:
                server.wait_ready()
                client = _Client(server.port, "kinto-peer setup")
                try:
                    _, _, hello = client.request("GET", "/v1/")
                    owner = _create_collection(client)
                    started = time.perf_counter()
                    if load == "api":
                        _load_api(client, records)
                    else:
                        _load_sql(venv, storage_url, owner, records, tmp)
                    load_seconds = time.perf_counter() - started
                    subprocess.run(
                        [str(_venv_bin(venv, "python")), "-c", _VACUUM_SCRIPT, storage_url],
                        check=True,
                    )
                finally:
                    client.close()
                _log(f"loaded {len(records)} records ({load}) in {load_seconds:.1f}s")
                result = _measure(server.port, len(records), page_sizes, repeats, before_pull)
            finally:
                server.stop()
            _add_server_times(result, server.log_path)
    finally:
        _reset_database(venv, pg_url, db_name, create=False)
    return {
        "version": json.loads(hello)["project_version"],
        "records": len(records),
        "server": "kinto start (pserve + waitress, 1 process, 4 threads); PostgreSQL storage, "
        "permission and cache; basicauth",
        "load": load,
        "setup_seconds": round(setup_seconds, 2),
        "load_seconds": round(load_seconds, 2),
        **result,
    }


def _measure(port: int, n: int, page_sizes: list[int], repeats: int,
             before_pull: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    warm = _pull(port, max(page_sizes), "kinto-peer warm-up")
    if warm["records"] != n:
        raise RuntimeError(f"pulled {warm['records']} of {n} records")
    runs: dict[int, list[dict[str, Any]]] = {p: [] for p in page_sizes}
    for round_no in range(repeats):
        for page in page_sizes:
            if before_pull is not None:
                before_pull(page, round_no)
            run = _pull(port, page, f"kinto-peer pull {page} {round_no}")
            if run["records"] != n:
                raise RuntimeError(f"page {page}: pulled {run['records']} of {n} records")
            _log(f"page {page:>5} round {round_no}: {run['seconds']:.2f}s, {run['requests']} GETs")
            if round_no:  # the same pages every round: the first round's bodies are enough
                del run["bodies"]
            runs[page].append(run)

    pulls = {}
    encodings: set[str] = set()
    for page, page_runs in runs.items():
        median = sorted(page_runs, key=lambda r: r["seconds"])[len(page_runs) // 2]
        gz = sum(len(gzip.compress(b, compresslevel=6)) for b in page_runs[0]["bodies"])
        encodings.update(*(r["content_encoding"] for r in page_runs))
        pulls[page] = {
            "records_per_s": round(n / median["seconds"]),
            "seconds": round(median["seconds"], 3),
            "seconds_all": [round(r["seconds"], 3) for r in page_runs],
            "requests": median["requests"],
            "bytes_per_record": round(median["bytes"] / n, 1),
            "gzip_bytes_per_record": round(gz / n, 1),
            "_agent": median["agent"],
        }

    times = _no_change(port, warm["etag"], max(page_sizes), NO_CHANGE_RUNS, _NO_CHANGE_AGENT)
    return {
        "content_encoding": sorted(encodings),
        "pulls": pulls,
        "no_change_ms": round(min(times) * 1000, 2),
        "no_change_median_ms": round(statistics.median(times) * 1000, 2),
    }


def _add_server_times(result: dict[str, Any], log_path: Path) -> None:
    """Server-side times from Kinto's ``request.summary`` log lines (``t``, whole ms): each
    reported pull's sum, and the no-change pulls' median. ``User-Agent`` tells them apart."""
    per_agent: dict[str, list[int]] = {}
    for fields in _summaries(log_path):
        per_agent.setdefault(fields.get("agent") or "", []).append(int(fields.get("t", -1)))
    for pull in result["pulls"].values():
        pull["server_seconds"] = round(sum(per_agent.get(pull.pop("_agent"), [])) / 1000, 3)
    no_change = per_agent.get(_NO_CHANGE_AGENT, [])
    result["no_change_server_ms"] = statistics.median(no_change) if no_change else None


# --- the standalone -------------------------------------------------------------------------

_CATEGORIES = ("safety", "fire", "flood", "traffic", "health", "utility", "crime", "weather")
_SEVERITIES = ("extreme", "severe", "moderate", "minor", "unknown")
_URGENCIES = ("immediate", "expected", "future", "past", "unknown")
_CERTAINTIES = ("observed", "likely", "possible", "unlikely", "unknown")
_STATUSES = ("actual", "exercise", "test", "draft")
_VOCABULARY = (
    "water main break reported near the corner road closed please avoid area crews on site "
    "power outage expected until evening residents advised to stay indoors smoke seen from "
    "building fire department responding heavy rain flooding basement streets school traffic"
)
_WORDS = tuple(_VOCABULARY.split())


def _text(rng: random.Random, length: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:length].rstrip().capitalize()


def make_records(n: int, seed: int = 0, groups: int = 200) -> list[dict]:
    """``n`` alert-like records (JSON-ready dicts), deterministic for a ``seed``."""
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    group_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(groups)]
    authors = [
        {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
         "display_name": f"{_text(rng, 12)} {i}"}
        for i in range(50)
    ]
    records = []
    for _ in range(n):
        sent = base + timedelta(seconds=rng.randrange(365 * 86400))
        records.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "group_id": rng.choice(group_ids),
            "category": rng.choice(_CATEGORIES),
            "severity": rng.choice(_SEVERITIES),
            "urgency": rng.choice(_URGENCIES),
            "certainty": rng.choice(_CERTAINTIES),
            "title": _text(rng, 40),
            "body": _text(rng, 150),
            "location": {"lat": round(rng.uniform(40.5, 40.9), 6),
                         "lon": round(rng.uniform(-74.2, -73.7), 6)},
            "sent_at": sent.isoformat().replace("+00:00", "Z"),
            "expires_at": (sent + timedelta(hours=rng.choice((1, 6, 24, 72))))
            .isoformat().replace("+00:00", "Z"),
            "status": rng.choice(_STATUSES),
            "author": rng.choice(authors),
        })
    return records


def format_table(result: dict) -> str:
    """The result of :func:`measure_kinto` as a Markdown table plus a few lines."""
    lines = [
        f"Kinto {result['version']}, {result['records']} records; {result['server']}",
        f"setup {result['setup_seconds']}s, load ({result['load']}) {result['load_seconds']}s; "
        f"Content-Encoding {'/'.join(result['content_encoding'])}",
        "",
        "| page | requests | seconds | server s | records/s | bytes/record | gzip bytes/record |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for page, p in sorted(result["pulls"].items()):
        lines.append(
            f"| {page} | {p['requests']} | {p['seconds']:.2f} | {p['server_seconds']:.2f} "
            f"| {p['records_per_s']:,} | {p['bytes_per_record']:.0f} "
            f"| {p['gzip_bytes_per_record']:.0f} |"
        )
    lines += [
        "",
        f"no-change pull: client best {result['no_change_ms']} ms, median "
        f"{result['no_change_median_ms']} ms; server median {result['no_change_server_ms']} ms",
    ]
    return "\n".join(lines)


def _log(message: str) -> None:
    print(f"[kinto_peer] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--setup", action="store_true", help="only create bench/.kinto-venv")
    parser.add_argument("--venv", type=Path, default=VENV_DIR)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument(
        "--page-sizes", default=",".join(map(str, DEFAULT_PAGE_SIZES)),
        help="comma-separated, default %(default)s",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--load", choices=("sql", "api"), default="sql",
        help="bulk SQL insert of Kinto's rows (default) or POST /v1/batch",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME)
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    args = parser.parse_args(argv)

    if args.setup:
        started = time.perf_counter()
        ensure_venv(args.venv)
        _log(f"{args.venv} ready in {time.perf_counter() - started:.1f}s")
        return 0
    result = measure_kinto(
        make_records(args.records),
        [int(p) for p in args.page_sizes.split(",")],
        args.pg_url,
        repeats=args.repeats,
        load=args.load,
        db_name=args.db_name,
        venv=args.venv,
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
