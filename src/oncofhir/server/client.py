"""HTTP to a FHIR server with the standard library (urllib): JSON in and out, retries with back-off, a bearer token.

Why urllib and not httpx or requests: the loader needs one POST and one search, with a timeout and a retry loop
it must control itself (which statuses, how long, how to name the failure in one line); the standard library does
that in a few lines, and a new dependency would buy nothing the workflow uses.

Retrying is safe: every transaction PUTs resources at fixed ids, so a transaction that reached the server before
its answer was lost changes nothing when sent again. 429 and 5xx answers (and a lost connection or a timeout) are
retried with exponential back-off, honouring ``Retry-After``; other answers are final. The token is sent as
``Authorization: Bearer`` and never appears in a message, a report or a log.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import ConfigError

#: Answers worth another try: the server is busy (429) or failed on its side (5xx).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest wait between two tries, whatever Retry-After or the back-off say (seconds).
MAX_WAIT = 60.0
FHIR_JSON = "application/fhir+json"


class ServerUnavailable(Exception):
    """The server could not be reached or did not answer in time (after every retry): one line, no URL secrets."""


@dataclass(frozen=True)
class Response:
    """A server's answer: HTTP status, the JSON body (None when it was not JSON) and how many retries it took."""

    status: int
    body: dict[str, Any] | None
    retries: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def check_url(url: str) -> str:
    """The server's base URL without a trailing slash; a usage error (exit 2) for anything but http(s)://host/...,
    or a URL carrying a user name or password (credentials belong in the token's environment variable)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"FHIR server URL must be http(s)://host[:port]/base, got {url!r}")
    if parts.username or parts.password:
        raise ConfigError("FHIR server URL must not hold credentials: put a token in the environment (token_env)")
    if parts.query or parts.fragment:
        raise ConfigError(f"FHIR server URL must be the base, without ?query or #fragment, got {url!r}")
    return url.rstrip("/")


class FhirClient:
    """A FHIR server's base URL, with the token, timeout and retry policy every request uses."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = check_url(base_url)
        self._token = token or None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep

    def __repr__(self) -> str:  # never the token
        return f"FhirClient({self.base_url!r})"

    def transaction(self, bundle: bytes) -> Response:
        """POST a transaction (or batch) Bundle to the base URL."""
        return self._request("POST", self.base_url, bundle, FHIR_JSON)

    def count(self, resource_type: str, params: Sequence[tuple[str, str]] = ()) -> Response:
        """``POST [base]/<type>/_search`` with ``_summary=count`` (a form body: long parameter lists fit, as the
        standard allows), and ``Cache-Control: no-cache`` so that a server caching search results (HAPI does)
        counts again."""
        form = urllib.parse.urlencode([*params, ("_summary", "count")]).encode()
        url = f"{self.base_url}/{resource_type}/_search"
        return self._request("POST", url, form, "application/x-www-form-urlencoded", {"Cache-Control": "no-cache"})

    def _headers(self, content_type: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON, "Content-Type": content_type, **(extra or {})}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _request(
        self, method: str, url: str, data: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> Response:
        headers = self._headers(content_type, extra)
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (http(s) only)
                    return Response(answer.status, _json(answer.read()), attempt)
            except urllib.error.HTTPError as exc:
                body = _json(_read(exc))
                if exc.code in RETRY_STATUSES and attempt < self.retries:
                    self._sleep(self._wait(attempt, exc.headers.get("Retry-After")))
                    attempt += 1
                    continue
                return Response(exc.code, body, attempt)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt < self.retries:
                    self._sleep(self._wait(attempt, None))
                    attempt += 1
                    continue
                why = _reason(exc, self.timeout)
                raise ServerUnavailable(f"{self.base_url}: {why} (after {attempt + 1} tries)") from None

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before the next try: Retry-After (seconds) when the server sent it, else 1, 2, 4, ... x backoff."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), MAX_WAIT)
        return min(self.backoff * 2**attempt, MAX_WAIT)


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _json(data: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _reason(exc: BaseException, timeout: float) -> str:
    """Why a request got no answer, in words: refused, unknown host, timed out..."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s (timed out)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running, is the port right?)"
    if isinstance(reason, socket.gaierror):
        return "unknown host name"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
