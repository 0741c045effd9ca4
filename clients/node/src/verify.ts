/**
 * Access tokens (sessions' JWTs, SPEC §11) verified offline with `jose`: the EdDSA
 * signature, `exp` (with a leeway), `iss` and `aud` (the header, `typ` included, is read
 * here first, before any key is looked up), against a JWKS cached by
 * `kid` here rather than by `createRemoteJWKSet`, so that the same cache serves a JWKS
 * fetched over gRPC (`GetJwks`) or HTTP and its 30 s refetch rule can be tested on a
 * clock of the test's own.
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { decodeProtectedHeader, errors, importJWK, jwtVerify, type JSONWebKeySet, type JWK, type JWTPayload } from "jose";
import { SessionService } from "../gen/tenancy/v1/session_service_pb.js";

/** The largest token tenancy signs; anything longer is malformed. */
export const MAX_TOKEN_BYTES = 4096;

/** The rule a refused token broke. */
export type VerifyRule =
  | "malformed"
  | "wrong_type"
  | "unknown_key"
  | "jwks_unavailable"
  | "bad_signature"
  | "expired"
  | "wrong_issuer"
  | "wrong_audience";

/** Why a token was refused: `rule` names what failed. */
export class VerifyError extends Error {
  constructor(
    readonly rule: VerifyRule,
    message: string,
    /** The token's `kid`, for `unknown_key`. */
    readonly kid?: string,
  ) {
    super(`${rule}: ${message}`);
    this.name = "VerifyError";
  }
}

/** The claims of a tenancy access token. */
export interface AccessClaims {
  iss: string;
  /** One or more audiences (the token carries a string for one, an array for several). */
  aud: string[];
  /** The user (UUID). */
  sub: string;
  /** The session (`Session.uuid`). */
  sid: string;
  iat: number;
  exp: number;
  jti: string;
  email: string;
  emailVerified: boolean;
  /** The session's active customer; undefined for a user-level session. */
  customerId?: string;
  permissions: string[];
  owner: boolean;
  roles: string[];
}

/** Returns the current JWKS document, or throws when it cannot be had. */
export type FetchJwks = () => Promise<JSONWebKeySet>;

/** Fetches with `SessionService.GetJwks` (no API key needed), e.g. over `client.transport`. */
export function jwksOverGrpc(transport: Transport, timeoutMs = 5000): FetchJwks {
  const sessions = createClient(SessionService, transport);
  return async () => {
    const { keys } = await sessions.getJwks({}, { timeoutMs });
    return { keys: keys.map(({ kty, crv, kid, x, alg, use }) => ({ kty, crv, kid, x, alg, use })) };
  };
}

/** Fetches `url`, e.g. `http://tenancy:50051/.well-known/jwks.json`. */
export function jwksOverHttp(url: string, timeoutMs = 5000): FetchJwks {
  return async () => {
    const response = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    return (await response.json()) as JSONWebKeySet;
  };
}

export interface VerifierOptions {
  /** `iss` must equal this (the server's `--token-issuer`, `tenancy` by default). */
  issuer: string;
  /** `aud` must contain this: the verifying service's own name. */
  audience: string;
  /** Seconds of clock skew tolerated past `exp` (30). */
  leewaySeconds?: number;
  /** Least milliseconds between two fetches caused by unknown `kid`s (30 000). */
  refetchIntervalMs?: number;
  /** Milliseconds a fetched set is used before the next token refetches it (600 000). */
  maxAgeMs?: number;
  /** For tests: a monotonic clock in milliseconds. */
  now?: () => number;
}

type Key = Awaited<ReturnType<typeof importJWK>>;

/** The Ed25519 signature keys of a JWKS by `kid`; others, and unreadable ones, are skipped. */
export async function usableKeys(jwks: JSONWebKeySet): Promise<Map<string, Key>> {
  const keys = new Map<string, Key>();
  for (const jwk of Array.isArray(jwks?.keys) ? (jwks.keys as JWK[]) : []) {
    const { kty, crv, kid, alg = "", use = "" } = jwk ?? {};
    const usable = kty === "OKP" && crv === "Ed25519" && ["", "EdDSA"].includes(alg) && ["", "sig"].includes(use);
    if (!usable || typeof kid !== "string" || !kid || keys.has(kid)) continue;
    try {
      keys.set(kid, await importJWK({ kty, crv, x: jwk.x }, "EdDSA"));
    } catch {
      // An unreadable key must not stop the verifier from using the others.
    }
  }
  return keys;
}

/**
 * Verifies tenancy access tokens offline. The JWKS is fetched on the first token; for an
 * unknown `kid` at most once per `refetchIntervalMs` (30 s), so forged `kid`s cannot make
 * it hammer tenancy; and on the first token after `maxAgeMs` (10 min), so a withdrawn key
 * stops verifying. A failed fetch keeps the keys already cached. One per process.
 */
export class Verifier {
  /** How many fetches were tried. */
  fetches = 0;
  private keys = new Map<string, Key>();
  private fetchedAt?: number;
  private fetchError?: string;
  private fetching?: Promise<void>;
  private readonly leeway: number;
  private readonly refetchInterval: number;
  private readonly maxAge: number;
  private readonly now: () => number;

  constructor(
    private readonly jwks: FetchJwks,
    private readonly options: VerifierOptions,
  ) {
    this.leeway = options.leewaySeconds ?? 30;
    this.refetchInterval = options.refetchIntervalMs ?? 30_000;
    this.maxAge = Math.max(options.maxAgeMs ?? 600_000, this.refetchInterval);
    this.now = options.now ?? (() => performance.now());
  }

  /** The claims of `token`, or a `VerifyError` naming the first rule it breaks. */
  async verify(token: string): Promise<AccessClaims> {
    const kid = this.readHeader(token);
    const key = await this.key(kid);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: ["EdDSA"],
        issuer: this.options.issuer,
        audience: this.options.audience,
        clockTolerance: this.leeway,
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      throw refusal(error, this.options.audience);
    }
    return claims(payload);
  }

  /** Form and header: three parts with a 64-byte signature, `alg: EdDSA`, `typ: at+jwt`, no `crit`, a `kid`. */
  private readHeader(token: string): string {
    const parts = typeof token === "string" && token.length <= MAX_TOKEN_BYTES ? token.split(".") : [];
    // 86 base64url characters are 64 bytes: a longer signature must not be cut.
    if (parts.length !== 3 || parts[2].length !== 86) {
      throw new VerifyError("malformed", "not header.payload.signature of at most 4 KiB with a 64-byte signature");
    }
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch (error) {
      throw new VerifyError("malformed", `unreadable header: ${(error as Error).message}`);
    }
    if (header.alg !== "EdDSA") throw new VerifyError("malformed", "alg is not EdDSA");
    const typ = typeof header.typ === "string" ? header.typ.toLowerCase() : "";
    if (typ !== "at+jwt" && typ !== "application/at+jwt") throw new VerifyError("wrong_type", "typ is not at+jwt");
    if (header.crit !== undefined) throw new VerifyError("malformed", "the header has crit, which no extension here handles");
    if (typeof header.kid !== "string") throw new VerifyError("malformed", "the header has no kid");
    return header.kid;
  }

  private async key(kid: string): Promise<Key> {
    for (;;) {
      const age = this.fetchedAt === undefined ? Infinity : this.now() - this.fetchedAt;
      const stale = age >= this.maxAge;
      const known = this.keys.get(kid);
      if (known && !stale) return known;
      // Tokens arriving during a fetch wait for it rather than start their own.
      if (this.fetching) {
        await this.fetching;
        continue;
      }
      if (stale || age >= this.refetchInterval) {
        this.fetching = this.refresh().finally(() => (this.fetching = undefined));
        await this.fetching;
      }
      const key = this.keys.get(kid);
      if (key) return key;
      if (this.fetchError !== undefined) throw new VerifyError("jwks_unavailable", this.fetchError);
      throw new VerifyError("unknown_key", `unknown signing key ${JSON.stringify(kid)}: not in the JWKS`, kid);
    }
  }

  private async refresh(): Promise<void> {
    this.fetchedAt = this.now();
    this.fetches++;
    try {
      this.keys = await usableKeys(await this.jwks());
      this.fetchError = undefined;
    } catch (error) {
      this.fetchError = String(error);
    }
  }
}

function refusal(error: unknown, audience: string): VerifyError {
  if (error instanceof errors.JWSSignatureVerificationFailed) return new VerifyError("bad_signature", "the signature does not verify");
  if (error instanceof errors.JWTExpired) return new VerifyError("expired", `expired at ${error.payload.exp} (seconds since the epoch)`);
  if (error instanceof errors.JWTClaimValidationFailed && error.reason === "check_failed") {
    if (error.claim === "iss") return new VerifyError("wrong_issuer", `wrong issuer ${JSON.stringify(error.payload.iss)}`);
    if (error.claim === "aud") return new VerifyError("wrong_audience", `the token is not meant for ${JSON.stringify(audience)}`);
  }
  return new VerifyError("malformed", (error as Error)?.message ?? String(error));
}

/** The claims with their types checked: a missing or mistyped one is `malformed`. */
function claims(payload: JWTPayload): AccessClaims {
  const p = payload as Record<string, unknown>;
  const field = <T>(name: string, type: "string" | "number" | "boolean"): T => {
    if (typeof p[name] !== type) throw new VerifyError("malformed", `the claim ${name} is missing or not a ${type}`);
    return p[name] as T;
  };
  const strings = (name: string): string[] => {
    const value = p[name];
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw new VerifyError("malformed", `the claim ${name} is not an array of strings`);
    }
    return value;
  };
  if (p.customer_id !== undefined && typeof p.customer_id !== "string") {
    throw new VerifyError("malformed", "the claim customer_id is not a string");
  }
  return {
    iss: field("iss", "string"),
    aud: typeof p.aud === "string" ? [p.aud] : strings("aud"),
    sub: field("sub", "string"),
    sid: field("sid", "string"),
    iat: field("iat", "number"),
    exp: field("exp", "number"),
    jti: field("jti", "string"),
    email: field("email", "string"),
    emailVerified: field("email_verified", "boolean"),
    customerId: p.customer_id as string | undefined,
    permissions: strings("permissions"),
    owner: field("owner", "boolean"),
    roles: strings("roles"),
  };
}
