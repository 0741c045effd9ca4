"""The JWKS that verifies access tokens: where it comes from, and its keys cached by ``kid``."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, Mapping, Optional

import grpc
import jwt

from tenancy.v1 import session_service_pb2, session_service_pb2_grpc

JwksDocument = Mapping[str, Any]
"""A JWKS as JSON: ``{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid", "x", ...}]}``."""

FetchJwks = Callable[[], JwksDocument]
"""Returns the current JWKS, or raises when it cannot be had."""


def jwks_over_grpc(channel: grpc.Channel, *, timeout: float = 5.0) -> FetchJwks:
    """Fetches with ``SessionService.GetJwks`` over ``channel`` (no API key needed)."""
    stub = session_service_pb2_grpc.SessionServiceStub(channel)

    def fetch() -> JwksDocument:
        response = stub.GetJwks(session_service_pb2.GetJwksRequest(), timeout=timeout)
        return {
            "keys": [
                {"kty": k.kty, "crv": k.crv, "kid": k.kid, "x": k.x, "alg": k.alg, "use": k.use}
                for k in response.keys
            ]
        }

    return fetch


def jwks_over_http(url: str, *, timeout: float = 5.0) -> FetchJwks:
    """Fetches ``url``, e.g. ``http://tenancy:50051/.well-known/jwks.json``."""

    def fetch() -> JwksDocument:
        request = urllib.request.Request(url, headers={"accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the caller's URL)
            return json.load(response)

    return fetch


class UnknownKid(LookupError):
    """No key of the JWKS has this ``kid``."""


class JwksFetchFailed(LookupError):
    """The JWKS could not be fetched, and no cached key has the ``kid``."""


def usable_keys(document: JwksDocument) -> Dict[str, Any]:
    """The Ed25519 signature keys of ``document`` by ``kid``, parsed once.

    Keys of another kind, or unreadable ones, are skipped: they must not stop the
    verifier from using the keys it can. Of two keys with one ``kid``, the first counts.
    """
    keys: Dict[str, Any] = {}
    for jwk in document.get("keys") or ():
        if not isinstance(jwk, Mapping):
            continue
        kid = jwk.get("kid")
        if (
            jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
            or jwk.get("alg", "") not in ("", "EdDSA")
            or jwk.get("use", "") not in ("", "sig")
            or not isinstance(kid, str)
            or not kid
            or kid in keys
        ):
            continue
        try:
            keys[kid] = jwt.PyJWK(dict(jwk), algorithm="EdDSA").key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return keys


class KeyCache:
    """The keys of a JWKS by ``kid``, fetched with ``fetch`` on the first lookup, again
    for an unknown ``kid`` at most once per ``refetch_interval`` seconds (so forged
    ``kid``s cannot make it hammer tenancy), and again on the first lookup after
    ``max_age`` seconds (so a withdrawn key stops verifying). A failed fetch keeps the
    keys already cached. Safe to share between threads.
    """

    def __init__(
        self,
        fetch: FetchJwks,
        *,
        refetch_interval: float = 30.0,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refetch_interval = refetch_interval
        self._max_age = max(max_age, refetch_interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: Dict[str, Any] = {}
        self._fetched_at: Optional[float] = None
        self._error: Optional[str] = None
        self.fetches = 0
        """How many fetches were tried."""

    def key(self, kid: str) -> Any:
        """The public key named ``kid``.

        Raises :class:`UnknownKid`, or :class:`JwksFetchFailed` when the last fetch
        failed and no cached key has ``kid``.
        """
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age >= self._max_age
            if not stale and kid in self._keys:
                return self._keys[kid]
            if stale or age >= self._refetch_interval:
                self._refresh(now)
            if kid in self._keys:
                return self._keys[kid]
            if self._error is not None:
                raise JwksFetchFailed(self._error)
            raise UnknownKid(kid)

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        try:
            document = self._fetch()
        except Exception as error:  # noqa: BLE001 (any failure of the caller's fetch)
            self._error = f"{type(error).__name__}: {error}"
            return
        self._keys = usable_keys(document)
        self._error = None
