/**
 * The verifier against hand-made tokens signed by generated Ed25519 keys, with a JWKS
 * source that counts its fetches and a clock the tests move.
 */
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { SignJWT, base64url, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from "jose";
import { Verifier, VerifyError, usableKeys, type VerifyRule } from "../src/index.js";

const ISSUER = "tenancy";
const AUDIENCE = "billing";
type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

async function newKey(): Promise<KeyPair> {
  return await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
}

async function publicJwk(kid: string, key: KeyPair): Promise<JWK> {
  return { ...(await exportJWK(key.publicKey)), kid, alg: "EdDSA", use: "sig" };
}

/** A JWKS server in memory: the keys it publishes now, and how often it was asked. */
class FakeJwks {
  keys: JWK[] = [];
  fetches = 0;
  down = false;
  fetch = async (): Promise<JSONWebKeySet> => {
    this.fetches++;
    if (this.down) throw new Error("connection refused");
    return { keys: [...this.keys] };
  };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function claims(changes: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  const all: Record<string, unknown> = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "0190a1b2-0000-7000-8000-000000000001",
    sid: "0190a1b2-0000-7000-8000-000000000002",
    iat: now,
    exp: now + 300,
    jti: "0190a1b2-0000-7000-8000-000000000003",
    email: "ada@example.com",
    email_verified: true,
    customer_id: "0190a1b2-0000-7000-8000-000000000004",
    permissions: ["customers.read"],
    owner: false,
    roles: [],
    ...changes,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

async function sign(key: KeyPair, header: Record<string, unknown> = {}, payload = claims()): Promise<string> {
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "k1", ...header })
    .sign(key.privateKey);
}

/** Any header, even one jose would refuse to sign, signed with WebCrypto. */
async function signRaw(key: KeyPair, header: Record<string, unknown>, payload = claims()): Promise<string> {
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(payload))}`;
  const signature = await crypto.subtle.sign("Ed25519", key.privateKey as CryptoKey, new TextEncoder().encode(input));
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

async function refused(promise: Promise<unknown>, rule: VerifyRule): Promise<VerifyError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return error instanceof VerifyError && error.rule === rule;
  });
  return caught as VerifyError;
}

let k1: KeyPair, k2: KeyPair, jwks: FakeJwks, clock: { now: number }, verifier: Verifier;

beforeEach(async () => {
  [k1, k2] = [await newKey(), await newKey()];
  jwks = new FakeJwks();
  jwks.keys.push(await publicJwk("k1", k1));
  clock = { now: 1_000_000 };
  verifier = new Verifier(jwks.fetch, { issuer: ISSUER, audience: AUDIENCE, now: () => clock.now });
});

test("a good token verifies to its claims", async () => {
  const verified = await verifier.verify(await sign(k1));
  assert.equal(verified.iss, ISSUER);
  assert.deepEqual(verified.aud, [AUDIENCE]);
  assert.equal(verified.sub, "0190a1b2-0000-7000-8000-000000000001");
  assert.equal(verified.sid, "0190a1b2-0000-7000-8000-000000000002");
  assert.deepEqual(verified.permissions, ["customers.read"]);
  assert.equal(verified.customerId, "0190a1b2-0000-7000-8000-000000000004");
});

test("aud as an array and a user-level session verify", async () => {
  const verified = await verifier.verify(await sign(k1, {}, claims({ aud: ["web", AUDIENCE], customer_id: undefined })));
  assert.deepEqual(verified.aud, ["web", AUDIENCE]);
  assert.equal(verified.customerId, undefined);
});

test("a tampered payload is a bad signature", async () => {
  const [header, , signature] = (await sign(k1)).split(".");
  const forged = base64url.encode(JSON.stringify(claims({ permissions: ["customers.write"] })));
  await refused(verifier.verify([header, forged, signature].join(".")), "bad_signature");
  await refused(verifier.verify(await sign(k2)), "bad_signature");
});

test("exp is checked with the leeway", async () => {
  const now = nowSeconds();
  // Default leeway 30 s: 20 s past exp still verifies, 31 s past does not.
  await verifier.verify(await sign(k1, {}, claims({ exp: now - 20 })));
  await refused(verifier.verify(await sign(k1, {}, claims({ exp: now - 31 }))), "expired");
  const strict = new Verifier(jwks.fetch, { issuer: ISSUER, audience: AUDIENCE, leewaySeconds: 0 });
  await refused(strict.verify(await sign(k1, {}, claims({ exp: now - 1 }))), "expired");
});

test("a wrong issuer, audience or type is named", async () => {
  await refused(verifier.verify(await sign(k1, {}, claims({ iss: "evil" }))), "wrong_issuer");
  await refused(verifier.verify(await sign(k1, {}, claims({ aud: ["web", "mail"] }))), "wrong_audience");
  await refused(verifier.verify(await sign(k1, { typ: "JWT" })), "wrong_type");
  await refused(verifier.verify(await sign(k1, { typ: undefined })), "wrong_type");
  await verifier.verify(await sign(k1, { typ: "application/AT+JWT" }));
});

test("malformed tokens are malformed", async () => {
  const good = await sign(k1);
  const hs256 = await new SignJWT(claims())
    .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: "k1" })
    .sign(new TextEncoder().encode("secret-secret-secret-secret-32by"));
  const tokens = [
    "",
    "a.b",
    `${good}.x`,
    `${good}A`,
    hs256,
    await signRaw(k1, { alg: "EdDSA", typ: "at+jwt", kid: "k1", crit: ["exp"], exp: true }),
    await sign(k1, { kid: undefined }),
    await sign(k1, {}, claims({ sub: undefined })),
    await sign(k1, {}, claims({ exp: "tomorrow" })),
    "a".repeat(4097),
  ];
  for (const token of tokens) await refused(verifier.verify(token), "malformed");
});

test("an unknown kid refetches once per 30 seconds", async () => {
  await verifier.verify(await sign(k1));
  assert.equal(jwks.fetches, 1, "the first token fetches the set");

  // k2 is published after the set was cached: the first token naming it refetches.
  clock.now += 31_000;
  jwks.keys.push(await publicJwk("k2", k2));
  await verifier.verify(await sign(k2, { kid: "k2" }));
  assert.equal(jwks.fetches, 2);

  // A kid still unknown within 30 s of that fetch does not refetch.
  clock.now += 29_000;
  for (const kid of ["k3", "k4"]) {
    const error = await refused(verifier.verify(await sign(k2, { kid })), "unknown_key");
    assert.equal(error.kid, kid);
  }
  assert.equal(jwks.fetches, 2, "no refetch within 30 s");
  await verifier.verify(await sign(k1));
  assert.equal(jwks.fetches, 2);

  clock.now += 1_000;
  await refused(verifier.verify(await sign(k2, { kid: "k3" })), "unknown_key");
  assert.equal(jwks.fetches, 3, "30 s later an unknown kid refetches again");
});

test("tokens arriving during a fetch share it", async () => {
  jwks.keys.push(await publicJwk("k2", k2));
  const tokens = await Promise.all([sign(k1), sign(k2, { kid: "k2" }), sign(k1)]);
  await Promise.all(tokens.map((t) => verifier.verify(t)));
  assert.equal(jwks.fetches, 1);
});

test("a set past its max age is refetched and a withdrawn key stops verifying", async () => {
  const token = await sign(k1);
  await verifier.verify(token);
  jwks.keys = [];
  clock.now += 599_000;
  await verifier.verify(token);
  assert.equal(jwks.fetches, 1);
  clock.now += 1_000;
  await refused(verifier.verify(token), "unknown_key");
  assert.equal(jwks.fetches, 2);
});

test("a failed fetch is named and keeps the cached keys", async () => {
  const token = await sign(k1);
  jwks.down = true;
  // Within 30 s the failure is not retried, and still named.
  await refused(verifier.verify(token), "jwks_unavailable");
  await refused(verifier.verify(token), "jwks_unavailable");
  assert.equal(jwks.fetches, 1);
  jwks.down = false;
  clock.now += 30_000;
  await verifier.verify(token);
  jwks.down = true;
  clock.now += 600_000;
  await verifier.verify(token);
  assert.equal(jwks.fetches, 3, "the stale set was refetched, and kept on failure");
});

test("the JWKS keeps only usable Ed25519 signature keys", async () => {
  const good = await publicJwk("good", k1);
  const keys = await usableKeys({
    keys: [
      { kty: "RSA", kid: "rsa", n: "AQAB", e: "AQAB" },
      { ...(await publicJwk("enc", k2)), use: "enc" },
      { ...(await publicJwk("short", k2)), x: "AAAA" },
      await publicJwk("", k2),
      good,
      await publicJwk("good", k2),
    ],
  });
  assert.deepEqual([...keys.keys()], ["good"]);
});
