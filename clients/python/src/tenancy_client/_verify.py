"""Access tokens (sessions' JWTs, SPEC §11) verified offline: PyJWT checks the EdDSA
signature, ``exp`` (with a leeway), ``iss`` and ``aud``; the header's ``typ`` (which
PyJWT does not check) and the claims' shapes are checked here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Tuple, Union

import grpc
import jwt

from ._jwks import FetchJwks, JwksFetchFailed, KeyCache, UnknownKid, jwks_over_grpc, jwks_over_http

MAX_TOKEN_BYTES = 4096
"""The largest token tenancy signs; anything longer is malformed."""


Rule = Literal[
    "malformed", "wrong_type", "unknown_key", "jwks_unavailable",
    "bad_signature", "expired", "wrong_issuer", "wrong_audience",
]
"""What a refused token broke: its form, header or a claim's type (``malformed``); ``typ``
not ``at+jwt`` (``wrong_type``); a ``kid`` no published key has, after the refetch the
rate limit allows (``unknown_key``); the JWKS could not be fetched and no cached key
has the ``kid`` (``jwks_unavailable``); the signature (``bad_signature``); ``exp``
passed more than the leeway ago (``expired``); ``iss`` (``wrong_issuer``); the
verifier's audience not in ``aud`` (``wrong_audience``)."""


class VerifyError(Exception):
    """A token was refused: ``rule`` names what failed, ``detail`` says how. ``kid`` is
    set for ``unknown_key``, ``exp`` for ``expired``, ``found`` (the issuer) for
    ``wrong_issuer``."""

    def __init__(
        self, rule: Rule, detail: str, *, kid: Optional[str] = None, exp: Any = None, found: Any = None
    ) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
        self.kid = kid
        self.exp = exp
        self.found = found


@dataclass(frozen=True)
class AccessClaims:
    """The claims of a tenancy access token."""

    iss: str
    aud: Tuple[str, ...]
    """One or more audiences (the token carries a string for one, an array for several)."""
    sub: str
    """The user (UUID)."""
    sid: str
    """The session (``Session.uuid``)."""
    iat: int
    exp: int
    jti: str
    email: str
    email_verified: bool
    customer_id: Optional[str]
    """The session's active customer; ``None`` for a user-level session."""
    permissions: Tuple[str, ...]
    owner: bool
    roles: Tuple[str, ...]

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "AccessClaims":
        def field(name: str, kind: type) -> Any:
            value = payload.get(name)
            # bool is an int in Python: an integer claim must not accept true.
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise VerifyError("malformed", f"the claim {name} is missing or not a {kind.__name__}")
            return value

        def strings(name: str) -> Tuple[str, ...]:
            values = field(name, list)
            if not all(isinstance(v, str) for v in values):
                raise VerifyError("malformed", f"the claim {name} is not an array of strings")
            return tuple(values)

        aud = payload.get("aud")
        customer_id = payload.get("customer_id")
        if customer_id is not None and not isinstance(customer_id, str):
            raise VerifyError("malformed", "the claim customer_id is not a string")
        return cls(
            iss=field("iss", str),
            aud=(aud,) if isinstance(aud, str) else strings("aud"),
            sub=field("sub", str),
            sid=field("sid", str),
            iat=field("iat", int),
            exp=field("exp", int),
            jti=field("jti", str),
            email=field("email", str),
            email_verified=field("email_verified", bool),
            customer_id=customer_id,
            permissions=strings("permissions"),
            owner=field("owner", bool),
            roles=strings("roles"),
        )


class Verifier:
    """Verifies tenancy access tokens offline against a JWKS cached by ``kid``.

    ``jwks`` returns the JWKS document (:func:`jwks_over_grpc`, :func:`jwks_over_http`,
    or your own), or is a :class:`KeyCache` of such a function with other timings; the
    default cache calls it on the first token, for an unknown ``kid`` at most once per
    30 s, and after 10 minutes. ``leeway``: seconds of clock skew tolerated past
    ``exp`` (30). Create one per process and share it (thread-safe).
    """

    def __init__(
        self, jwks: Union[FetchJwks, KeyCache], *, issuer: str, audience: str, leeway: float = 30.0
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.keys = jwks if isinstance(jwks, KeyCache) else KeyCache(jwks)

    @classmethod
    def over_grpc(cls, channel: grpc.Channel, *, issuer: str, audience: str, leeway: float = 30.0) -> "Verifier":
        """Fetches the JWKS with ``SessionService.GetJwks``, e.g. over ``client.channel``."""
        return cls(jwks_over_grpc(channel), issuer=issuer, audience=audience, leeway=leeway)

    @classmethod
    def over_http(cls, url: str, *, issuer: str, audience: str, leeway: float = 30.0) -> "Verifier":
        """Fetches the JWKS from ``url`` (``http://HOST:PORT/.well-known/jwks.json``)."""
        return cls(jwks_over_http(url), issuer=issuer, audience=audience, leeway=leeway)

    def verify(self, token: str) -> AccessClaims:
        """The claims of ``token``; raises :class:`VerifyError` naming the first rule it
        breaks: form and header (``alg: EdDSA``, ``typ: at+jwt``, ``kid``), a known
        key, the signature, ``exp``, ``iss``, ``aud``, the claims' types."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
            raise VerifyError("malformed", "not a string of at most 4 KiB")
        parts = token.split(".")
        # 86 base64url characters are 64 bytes: a longer signature must not be cut.
        if len(parts) != 3 or len(parts[2]) != 86:
            raise VerifyError("malformed", "not header.payload.signature with a 64-byte signature")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise VerifyError("malformed", f"unreadable header: {error}") from None
        if header.get("alg") != "EdDSA":
            raise VerifyError("malformed", "alg is not EdDSA")
        typ = header.get("typ")
        typ = typ.lower() if isinstance(typ, str) else ""
        if typ not in ("at+jwt", "application/at+jwt"):
            raise VerifyError("wrong_type", "typ is not at+jwt")
        if "crit" in header:
            raise VerifyError("malformed", "the header has crit, which no extension here handles")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise VerifyError("malformed", "the header has no kid")
        try:
            key = self.keys.key(kid)
        except UnknownKid:
            raise VerifyError("unknown_key", f"no key of the JWKS has kid {kid!r}", kid=kid) from None
        except JwksFetchFailed as error:
            raise VerifyError("jwks_unavailable", str(error)) from None

        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                # The server's own verifier checks exp, iss and aud, not iat or nbf.
                options={"require": ["exp", "iss", "aud"], "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidSignatureError:
            raise VerifyError("bad_signature", "the signature does not verify") from None
        except jwt.ExpiredSignatureError:
            exp = _signed_claims(token).get("exp")
            raise VerifyError("expired", f"expired at {exp} (seconds since the epoch)", exp=exp) from None
        except jwt.InvalidIssuerError:
            iss = _signed_claims(token).get("iss")
            raise VerifyError("wrong_issuer", f"issued by {iss!r}", found=iss) from None
        except jwt.InvalidAudienceError:
            raise VerifyError("wrong_audience", f"not meant for {self.audience!r}") from None
        except jwt.InvalidTokenError as error:
            raise VerifyError("malformed", str(error)) from None
        return AccessClaims.from_payload(payload)


def _signed_claims(token: str) -> Mapping[str, Any]:
    """The claims of a token whose signature was already verified."""
    return jwt.decode(token, options={"verify_signature": False})
