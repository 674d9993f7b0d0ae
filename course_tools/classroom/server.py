"""The class server: the room's label store (:class:`~course_utils.alignment.label_db.LabelDB`) over HTTP.

Starlette, served by uvicorn: a small, maintained ASGI toolkit with no code generation or
validation layer that this store would not use (the rules live in ``LabelDB``), and a
server that runs from one command with no web server in front of it.

=======================  ==========================================================
``GET  /health``         ``{"ok", "labels", "participants"}`` (no secret needed)
``POST /join``           ``{"code", "name"}`` -> ``{"name", "token"}``: the join code is
                         the room's secret; the token is the participant's, for writes
``GET  /pairs``          the room's pairs (token)
``GET  /labels``         the participant's own labels (token)
``POST /labels``         one label (token) -> ``{"label", "duplicate"}``, answered only
                         after the SQLite commit; re-sending a label id changes nothing
``GET  /export``         every label (the instructor key, printed at start-up)
=======================  ==========================================================

A request the store refuses gets a 4xx with ``{"error": "..."}`` naming the problem, and
changes nothing: 400 malformed JSON, 401 no or unknown token, 403 wrong join code or
instructor key, 404 unknown pair id, 409 a conflict (pair judged already, another
participant's label id or label, a taken name), 413 a body over ``max_body`` bytes, 422 a
missing or malformed field, 429 a participant over the label rate or an address over the
wrong-code rate (the answer says when to retry).
"""

from __future__ import annotations

import hmac
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from course_utils.alignment.label_db import LabelDB, LabelError


@dataclass
class Limits:
    """What one participant or address may do. A person labels a pair every few seconds;
    the burst leaves room for a queue replayed after a dropped connection."""
    max_body: int = 64 * 1024      # bytes of one request body
    label_rate: float = 20.0       # labels per second, sustained, per participant
    label_burst: int = 200         # labels at once (a replayed queue), per participant
    wrong_code_burst: int = 10     # wrong join codes per address before 429
    wrong_code_rate: float = 0.2   # wrong join codes per second refilled


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; :meth:`take` is False when empty."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.level: dict[str, float] = defaultdict(lambda: float(burst))
        self.stamp: dict[str, float] = {}

    def _refill(self, key: str) -> float:
        now = self.clock()
        self.level[key] = min(self.burst, self.level[key] + self.rate * (now - self.stamp.get(key, now)))
        self.stamp[key] = now
        return self.level[key]

    def empty(self, key: str) -> bool:
        """No token left for ``key`` (nothing is taken)."""
        return self._refill(key) < 1

    def take(self, key: str) -> bool:
        """Take a token for ``key``; False (and nothing taken) when there is none."""
        if self._refill(key) < 1:
            return False
        self.level[key] -= 1
        return True

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token again."""
        return max(0.0, (1 - self.level[key]) / self.rate)


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


#: A body over the limit is still read (and thrown away) up to this size, so that an ordinary
#: client gets its 413 instead of a broken connection; past it the answer is sent at once.
DRAIN_CAP = 16 << 20


async def _body_json(request: Request, max_body: int) -> object:
    """The request's JSON body, read up to ``max_body`` bytes (413 past it, 400 if not JSON)."""
    declared = request.headers.get("content-length")
    too_big = Refused(413, f"the body is larger than {max_body} bytes")
    if declared is not None and (not declared.isdigit() or int(declared) > DRAIN_CAP
                                 or "100-continue" in request.headers.get("expect", "").lower()
                                 and int(declared) > max_body):
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_CAP:
            raise too_big
        if size <= max_body:
            chunks.append(chunk)
    if size > max_body:
        raise too_big
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(400, f"the body is not valid JSON ({e})") from None


async def _drain(request: Request) -> None:
    """Read and discard what is left of a refused request's body (up to :data:`DRAIN_CAP`), so
    that the client reads the refusal rather than a reset connection."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > DRAIN_CAP or "100-continue" in request.headers.get("expect", ""):
        return
    try:
        async for _ in request.stream():
            pass
    except RuntimeError:  # the body was read already
        pass


def make_app(db: LabelDB, code: str, instructor_key: str, limits: Limits | None = None,
             prefix: str = "") -> Starlette:
    """The ASGI app of a room: ``db`` its store, ``code`` its join code; every path under
    ``prefix`` (a JupyterHub service is reached at ``/services/<name>/``)."""
    limits = limits or Limits()
    labels_bucket = TokenBucket(limits.label_rate, limits.label_burst)
    wrong_code = TokenBucket(limits.wrong_code_rate, limits.wrong_code_burst)

    def participant(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise Refused(401, "no participant token: join the room first (POST /join)")
        name = db.participant(auth[7:].strip())
        if name is None:
            raise Refused(401, "unknown participant token: join the room again")
        return name

    def handler(fn):
        async def endpoint(request: Request) -> JSONResponse:
            try:
                status, out = await fn(request)
                return JSONResponse(out, status_code=status)
            except (Refused, LabelError) as e:
                await _drain(request)
                return JSONResponse({"error": str(e)}, status_code=e.status, headers=getattr(e, "headers", None))
        return endpoint

    async def health(request: Request):
        return 200, {"ok": True, "labels": await run_in_threadpool(db.count),
                     "participants": len(await run_in_threadpool(db.participants))}

    async def join(request: Request):
        address = request.client.host if request.client else "?"
        if wrong_code.empty(address):
            raise Refused(429, "too many wrong join codes from this address; wait",
                          {"Retry-After": f"{wrong_code.wait(address):.0f}"})
        body = await _body_json(request, limits.max_body)
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            raise Refused(422, "a join is {\"code\": ..., \"name\": ...}")
        if not hmac.compare_digest(body["code"].encode(), code.encode()):
            wrong_code.take(address)
            raise Refused(403, "wrong join code")
        token = await run_in_threadpool(db.register, body.get("name"))
        return 201, {"name": body["name"].strip(), "token": token}

    async def pairs(request: Request):
        await run_in_threadpool(participant, request)
        return 200, {"pairs": await run_in_threadpool(db.pairs)}

    async def own_labels(request: Request):
        name = await run_in_threadpool(participant, request)
        return 200, {"labels": await run_in_threadpool(db.rows, name)}

    async def add_label(request: Request):
        name = await run_in_threadpool(participant, request)
        if not labels_bucket.take(name):
            raise Refused(429, f"more than {limits.label_rate:g} labels a second: slow down",
                          {"Retry-After": f"{max(1.0, labels_bucket.wait(name)):.0f}"})
        event = await _body_json(request, limits.max_body)
        if not isinstance(event, dict):
            raise Refused(422, "a label is a JSON object")
        row, duplicate = await run_in_threadpool(db.record, event, name)
        return (200 if duplicate else 201), {"label": row, "duplicate": duplicate}

    async def export(request: Request):
        auth = request.headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {instructor_key}".encode()):
            raise Refused(403, "the export needs the instructor key")
        return 200, {"pairs": await run_in_threadpool(db.pairs), "labels": await run_in_threadpool(db.rows)}

    routes = [Route("/health", handler(health), methods=["GET"]),
              Route("/join", handler(join), methods=["POST"]),
              Route("/pairs", handler(pairs), methods=["GET"]),
              Route("/labels", handler(own_labels), methods=["GET"]),
              Route("/labels", handler(add_label), methods=["POST"]),
              Route("/export", handler(export), methods=["GET"])]
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:  # 404, 405 as JSON too
        return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path}"},
                            status_code=exc.status_code, headers=exc.headers)
    return Starlette(routes=[Mount(prefix, routes=routes)] if prefix else routes,
                     exception_handlers={HTTPException: http_error})
