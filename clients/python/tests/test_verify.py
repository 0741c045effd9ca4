"""The verifier against hand-made tokens signed by generated Ed25519 keys, with a JWKS
source that counts its fetches and a clock the tests move."""

import base64
import json
import time
import unittest

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

import tenancy_client as tc

ISSUER, AUDIENCE = "tenancy", "billing"


def public_jwk(kid, private_key):
    jwk = OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


class FakeJwks:
    """A JWKS server in memory: the keys it publishes now, and how often it was asked."""

    def __init__(self, *keys):
        self.keys = [public_jwk(kid, key) for kid, key in keys]
        self.fetches = 0
        self.down = False

    def __call__(self):
        self.fetches += 1
        if self.down:
            raise ConnectionError("connection refused")
        return {"keys": list(self.keys)}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def claims(**changes):
    """A customer session's claims, expiring in 5 minutes; a change to None drops that claim."""
    now = int(time.time())
    uuid = "0190a1b2-0000-7000-8000-00000000000{}".format
    base = dict(iss=ISSUER, aud=AUDIENCE, sub=uuid(1), sid=uuid(2), jti=uuid(3), customer_id=uuid(4),
                iat=now, exp=now + 300, email="ada@example.com", email_verified=True,
                permissions=["customers.read"], owner=False, roles=[])
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(key, kid="k1", typ="at+jwt", payload=None, **header):
    return jwt.encode(payload or claims(), key, algorithm="EdDSA", headers={"kid": kid, "typ": typ, **header})


def b64(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


class VerifierTest(unittest.TestCase):
    def setUp(self):
        self.k1, self.k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.clock = Clock()
        self.jwks = FakeJwks(("k1", self.k1))
        self.verifier = tc.Verifier(tc.KeyCache(self.jwks, clock=self.clock), issuer=ISSUER, audience=AUDIENCE)

    def refused(self, verifier, token, rule):
        with self.assertRaises(tc.VerifyError) as raised:
            verifier.verify(token)
        self.assertEqual(raised.exception.rule, rule, raised.exception)
        return raised.exception

    def test_a_good_token_verifies_to_its_claims(self):
        verified = self.verifier.verify(sign(self.k1))
        self.assertEqual(verified.iss, ISSUER)
        self.assertEqual(verified.aud, (AUDIENCE,))
        self.assertEqual(verified.sub, "0190a1b2-0000-7000-8000-000000000001")
        self.assertEqual(verified.sid, "0190a1b2-0000-7000-8000-000000000002")
        self.assertEqual(verified.permissions, ("customers.read",))
        self.assertEqual(verified.customer_id, "0190a1b2-0000-7000-8000-000000000004")

    def test_aud_as_an_array_and_a_user_level_session_verify(self):
        verified = self.verifier.verify(sign(self.k1, payload=claims(aud=["web", AUDIENCE], customer_id=None)))
        self.assertEqual(verified.aud, ("web", AUDIENCE))
        self.assertIsNone(verified.customer_id)

    def test_a_tampered_payload_is_a_bad_signature(self):
        header, _, signature = sign(self.k1).split(".")
        forged = ".".join([header, b64(claims(permissions=["customers.write"])), signature])
        self.refused(self.verifier, forged, "bad_signature")
        self.refused(self.verifier, sign(self.k2, kid="k1"), "bad_signature")

    def test_exp_is_checked_with_the_leeway(self):
        now = int(time.time())
        # Default leeway 30 s: 20 s past exp still verifies, 31 s past does not.
        self.verifier.verify(sign(self.k1, payload=claims(exp=now - 20)))
        raised = self.refused(self.verifier, sign(self.k1, payload=claims(exp=now - 31)), "expired")
        self.assertEqual(raised.exp, now - 31)
        self.assertEqual(raised.rule, "expired")
        strict = tc.Verifier(self.jwks, issuer=ISSUER, audience=AUDIENCE, leeway=0)
        self.refused(strict, sign(self.k1, payload=claims(exp=now - 1)), "expired")

    def test_a_wrong_issuer_audience_or_type_is_named(self):
        raised = self.refused(self.verifier, sign(self.k1, payload=claims(iss="evil")), "wrong_issuer")
        self.assertEqual(raised.found, "evil")
        self.refused(self.verifier, sign(self.k1, payload=claims(aud=["web", "mail"])), "wrong_audience")
        for typ in ("JWT", ""):  # "" leaves typ out
            self.refused(self.verifier, sign(self.k1, typ=typ), "wrong_type")
        self.verifier.verify(sign(self.k1, typ="application/AT+JWT"))

    def test_malformed_tokens_are_malformed(self):
        good = sign(self.k1)
        for token in [
            "",
            "a.b",
            good + ".x",
            good + "A",
            jwt.encode(claims(), "secret-secret-secret-secret-32by", algorithm="HS256",
                       headers={"kid": "k1", "typ": "at+jwt"}),
            sign(self.k1, crit=["exp"]),
            jwt.encode(claims(), self.k1, algorithm="EdDSA", headers={"typ": "at+jwt"}),
            sign(self.k1, payload=claims(sub=None)),
            sign(self.k1, payload=claims(exp="tomorrow")),
            "a" * 4097,
        ]:
            with self.subTest(token=token[:40]):
                self.refused(self.verifier, token, "malformed")

    def test_an_unknown_kid_refetches_once_per_30_seconds(self):
        self.verifier.verify(sign(self.k1))
        self.assertEqual(self.jwks.fetches, 1, "the first token fetches the set")

        # k2 is published after the set was cached: the first token naming it refetches.
        self.clock.now += 31
        self.jwks.keys.append(public_jwk("k2", self.k2))
        self.verifier.verify(sign(self.k2, kid="k2"))
        self.assertEqual(self.jwks.fetches, 2)

        # A kid still unknown within 30 s of that fetch does not refetch.
        self.clock.now += 29
        for kid in ("k3", "k4"):
            raised = self.refused(self.verifier, sign(self.k2, kid=kid), "unknown_key")
            self.assertEqual(raised.kid, kid)
        self.assertEqual(self.jwks.fetches, 2, "no refetch within 30 s")
        self.verifier.verify(sign(self.k1))
        self.assertEqual(self.jwks.fetches, 2)

        self.clock.now += 1
        self.refused(self.verifier, sign(self.k2, kid="k3"), "unknown_key")
        self.assertEqual(self.jwks.fetches, 3, "30 s later an unknown kid refetches again")

    def test_a_set_past_its_max_age_is_refetched_and_a_withdrawn_key_stops_verifying(self):
        token = sign(self.k1)
        self.verifier.verify(token)
        self.jwks.keys.clear()
        self.clock.now += 599
        self.verifier.verify(token)
        self.assertEqual(self.jwks.fetches, 1)
        self.clock.now += 1
        self.refused(self.verifier, token, "unknown_key")
        self.assertEqual(self.jwks.fetches, 2)

    def test_a_failed_fetch_is_named_and_keeps_the_cached_keys(self):
        token = sign(self.k1)
        self.jwks.down = True
        for _ in range(2):  # within 30 s the failure is not retried, and still named
            self.refused(self.verifier, token, "jwks_unavailable")
        self.assertEqual(self.jwks.fetches, 1)
        self.jwks.down = False
        self.clock.now += 30
        self.verifier.verify(token)
        self.jwks.down = True
        self.clock.now += 600
        self.verifier.verify(token)
        self.assertEqual(self.jwks.fetches, 3, "the stale set was refetched, and kept on failure")

    def test_the_jwks_keeps_only_usable_ed25519_signature_keys(self):
        good = public_jwk("good", self.k1)
        keys = tc._jwks.usable_keys({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            {**public_jwk("enc", self.k2), "use": "enc"},
            {**public_jwk("short", self.k2), "x": "AAAA"},
            {**public_jwk("", self.k2)},
            "not a key",
            good,
            public_jwk("good", self.k2),
        ]})
        self.assertEqual(list(keys), ["good"])


if __name__ == "__main__":
    unittest.main()
