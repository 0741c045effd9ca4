/**
 * Client for the tenancy gRPC service (Connect for Node over the gRPC protocol).
 *
 * - `gen/`: messages and service descriptors generated from the repository's `proto/`
 *   by protoc-gen-es when the package is built (never edited by hand).
 * - `connect` / `apiKey`: clients whose every call carries `authorization: Bearer <key>`.
 * - `StatusDetails.fromError`: the `google.rpc` details of a failed call as typed values.
 * - `retryCreate`: a create retried with one `request_id` on UNAVAILABLE, ABORTED and
 *   DEADLINE_EXCEEDED, so the server answers every attempt with the first result.
 * - `Verifier`: access tokens (sessions' JWTs) verified offline against the JWKS, cached
 *   by `kid` (`jwksOverGrpc`, `jwksOverHttp`): typed `AccessClaims`, or a `VerifyError`
 *   whose `rule` names what failed.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RequestInfoSchema,
  RetryInfoSchema,
  type BadRequest_FieldViolation,
  type ErrorInfo,
  type PreconditionFailure_Violation,
  type QuotaFailure_Violation,
} from "../gen/google/rpc/error_details_pb.js";
import { Health } from "../gen/health/v1/health_pb.js";
import { AccountService } from "../gen/tenancy/v1/account_service_pb.js";
import { CustomerService } from "../gen/tenancy/v1/customer_service_pb.js";
import { EventService } from "../gen/tenancy/v1/event_service_pb.js";
import { SessionService } from "../gen/tenancy/v1/session_service_pb.js";
import { UserService } from "../gen/tenancy/v1/user_service_pb.js";

export * as pb from "./pb.js";
export { HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/health/v1/health_pb.js";
export { Code, ConnectError };
export {
  MAX_TOKEN_BYTES,
  Verifier,
  VerifyError,
  jwksOverGrpc,
  jwksOverHttp,
  usableKeys,
  type AccessClaims,
  type FetchJwks,
  type VerifierOptions,
  type VerifyRule,
} from "./verify.js";

/** The key cannot be sent as a header value (empty, or not visible ASCII). */
export class InvalidApiKey extends Error {
  constructor() {
    super("an API key must be non-empty visible ASCII without spaces");
  }
}

/** An interceptor that sets `authorization: Bearer <key>` on every call, replacing any the caller set. */
export function apiKey(key: string): Interceptor {
  // Checked here rather than by the server: a bad key would fail every call opaquely.
  if (typeof key !== "string" || !/^[\x21-\x7e]+$/.test(key)) throw new InvalidApiKey();
  const header = `Bearer ${key}`;
  return (next) => async (request) => {
    request.header.set("authorization", header);
    return await next(request);
  };
}

export interface ConnectOptions {
  /** Extra interceptors, run after the key is set. */
  interceptors?: Interceptor[];
  /** Default deadline of every call, in milliseconds. */
  timeoutMs?: number;
  /** Node TLS options for an `https://` URL (e.g. `{ ca }`, `{ cert, key }`, `{ servername }`). */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; servername?: string };
}

/** The service clients over one transport, every call carrying the key. */
export interface TenancyClient {
  users: Client<typeof UserService>;
  customers: Client<typeof CustomerService>;
  accounts: Client<typeof AccountService>;
  events: Client<typeof EventService>;
  sessions: Client<typeof SessionService>;
  /** `grpc.health.v1.Health` (it needs no key; sending one does no harm). */
  health: Client<typeof Health>;
  transport: Transport;
}

/** Clients for `baseUrl` (`http://127.0.0.1:50051`, `https://tenancy:443`) with `key` on every call. */
export function connect(baseUrl: string, key: string, options: ConnectOptions = {}): TenancyClient {
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [apiKey(key), ...(options.interceptors ?? [])],
    defaultTimeoutMs: options.timeoutMs,
    nodeOptions: options.tls,
  });
  return {
    users: createClient(UserService, transport),
    customers: createClient(CustomerService, transport),
    accounts: createClient(AccountService, transport),
    events: createClient(EventService, transport),
    sessions: createClient(SessionService, transport),
    health: createClient(Health, transport),
    transport,
  };
}

/** What the server said about a failed call: code, message and the `google.rpc` details it attached. */
export class StatusDetails {
  fieldViolations: BadRequest_FieldViolation[] = [];
  errorInfo?: ErrorInfo;
  preconditionViolations: PreconditionFailure_Violation[] = [];
  quotaViolations: QuotaFailure_Violation[] = [];
  /** Seconds the server asks a retry to wait (`RetryInfo`). */
  retryDelay?: number;
  /** The id to quote on INTERNAL (`RequestInfo`). */
  requestId?: string;

  private constructor(readonly code: Code, readonly message: string) {}

  /** Reads any thrown value; a non-Connect error becomes UNKNOWN. */
  static fromError(error: unknown): StatusDetails {
    const e = ConnectError.from(error);
    const details = new StatusDetails(e.code, e.rawMessage);
    details.fieldViolations = e.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
    details.errorInfo = e.findDetails(ErrorInfoSchema)[0];
    details.preconditionViolations = e.findDetails(PreconditionFailureSchema).flatMap((p) => p.violations);
    details.quotaViolations = e.findDetails(QuotaFailureSchema).flatMap((q) => q.violations);
    const retry = e.findDetails(RetryInfoSchema)[0]?.retryDelay;
    if (retry) details.retryDelay = Number(retry.seconds) + retry.nanos / 1e9;
    details.requestId = e.findDetails(RequestInfoSchema)[0]?.requestId;
    return details;
  }

  /** The `ErrorInfo` reason (`EMAIL_TAKEN`, ...), if any. */
  get reason(): string | undefined {
    return this.errorInfo?.reason;
  }

  /** The description of the violation of `field`, if that field was named. */
  violation(field: string): string | undefined {
    return this.fieldViolations.find((v) => v.field === field)?.description;
  }

  /** The fields named by the violations, in the server's order. */
  violatedFields(): string[] {
    return this.fieldViolations.map((v) => v.field);
  }
}

/** Whether a failed create may have been applied or may succeed if sent again. */
export function isRetryable(code: Code): boolean {
  return code === Code.Unavailable || code === Code.Aborted || code === Code.DeadlineExceeded;
}

export interface RetryPolicy {
  /** Attempts in all, the first included (default 5). */
  maxAttempts?: number;
  /** Milliseconds before the first retry, doubling after each (default 100), up to `maxBackoffMs` (default 5000). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** For tests: how to wait. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Sends a create, retrying it with the same `requestId` while it fails with a retryable
 * code. A `requestId` already set is kept; otherwise a fresh UUID is set once, on a copy.
 * `call` sends one attempt, e.g. `(r) => client.customers.createCustomer(r)`.
 */
export async function retryCreate<Req extends { requestId?: string }, Res>(
  call: (request: Req) => Promise<Res>,
  request: Req,
  policy: RetryPolicy = {},
): Promise<Res> {
  const maxAttempts = Math.max(policy.maxAttempts ?? 5, 1);
  const initial = policy.initialBackoffMs ?? 100;
  const max = policy.maxBackoffMs ?? 5000;
  const sleep = policy.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const attemptRequest = { ...request, requestId: request.requestId || crypto.randomUUID() };
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(attemptRequest);
    } catch (error) {
      const details = StatusDetails.fromError(error);
      if (!isRetryable(details.code) || attempt >= maxAttempts) throw error;
      const doubled = Math.min(initial * 2 ** (attempt - 1), max);
      const jittered = doubled * (0.5 + Math.random() / 2);
      await sleep(Math.max(jittered, Math.min((details.retryDelay ?? 0) * 1000, max)));
    }
  }
}
