/**
 * The clients' smoke scenario through @tenancy/client (.ci/clients.sh):
 * `node dist/examples/smoke.js http://HOST:PORT`, the API key in TENANCY_SMOKE_KEY.
 * Ends with a session: sign-in as the owner, its access token verified offline by
 * `Verifier` (JWKS over gRPC, and over HTTP), refreshed and verified again, revoked, and
 * the revoked session's refresh refused.
 */
import { randomBytes } from "node:crypto";
import {
  Code,
  ConnectError,
  ServingStatus,
  StatusDetails,
  Verifier,
  VerifyError,
  connect,
  jwksOverGrpc,
  jwksOverHttp,
  pb,
  retryCreate,
} from "../src/index.js";

const PASSWORD = "correct horse battery staple 42";

function check(condition: unknown, message: string): void {
  if (!condition) {
    console.error(`FAIL node: ${message}`);
    process.exit(1);
  }
}

const baseUrl = process.argv[2];
const client = connect(baseUrl, process.env.TENANCY_SMOKE_KEY ?? "", { timeoutMs: 10_000 });
const tag = randomBytes(5).toString("hex");

const health = await client.health.check({});
check(health.status === ServingStatus.SERVING, `health is ${ServingStatus[health.status]}`);
console.log("ok   node: health SERVING");

// The first attempt reaches the server but its answer is "lost": the helper retries
// with the same requestId and gets the customer the first one made.
const sent: { requestId: string; uuid: string }[] = [];
const { customer } = await retryCreate(
  async (request) => {
    const response = await client.customers.createCustomer(request);
    sent.push({ requestId: request.requestId, uuid: response.customer?.uuid ?? "" });
    if (sent.length === 1) throw new ConnectError("the answer was lost (simulated)", Code.Unavailable);
    return response;
  },
  {
    customer: {
      email: `js-owner-${tag}@example.com`,
      firstName: "Js",
      lastName: "Owner",
      customerType: pb.CustomerType.PERSONAL,
    },
    password: PASSWORD,
    requestId: "",
  },
  { sleep: async () => {} },
);
check(sent.length === 2 && sent[0].requestId && sent[0].requestId === sent[1].requestId, `attempts ${JSON.stringify(sent)}`);
check(customer?.uuid === sent[0].uuid, `the retry made ${customer?.uuid}, the first attempt ${sent[0].uuid}`);
check(customer?.ownerUserId, "the customer has no owner");
console.log(`ok   node: CreateCustomer with its owner ${customer?.ownerUserId}; retried with the same request_id it gets the same customer`);

const { account } = await client.accounts.createAccount({
  customerId: customer!.uuid,
  account: { name: `js ${tag}`, serviceType: pb.ServiceType.WEB_MEETING },
});
check(account?.uuid, "CreateAccount returned no uuid");
console.log(`ok   node: CreateAccount ${account!.uuid}`);

const { user: member } = await client.users.createUser({
  user: { email: `js-member-${tag}@example.com`, firstName: "Js", lastName: "Member" },
});
await client.accounts.addAccountUser({
  accountId: account!.uuid,
  member: { case: "userId", value: member!.uuid },
  permissions: ["rooms.read"],
});
console.log("ok   node: AddAccountUser with rooms.read");

const access = (permission: string) =>
  client.users.checkAccess({ userId: member!.uuid, target: { case: "accountId", value: account!.uuid }, permission });
const allowed = await access("rooms.read");
const denied = await access("rooms.write");
check(allowed.allowed, `rooms.read was denied: ${allowed.reason}`);
check(!denied.allowed, "rooms.write was allowed");
console.log("ok   node: CheckAccess rooms.read allowed, rooms.write denied");

try {
  await client.customers.createCustomer({ customer: { email: "not an email", customerType: pb.CustomerType.PERSONAL } });
  check(false, "an invalid customer was created");
} catch (error) {
  const details = StatusDetails.fromError(error);
  check(details.code === Code.InvalidArgument, `got ${Code[details.code]}`);
  const fields = details.violatedFields();
  check(fields.includes("customer.email") && fields.includes("customer.first_name"), `violations: ${fields}`);
  console.log(`ok   node: INVALID_ARGUMENT names ${fields.join(", ")}`);
}

// Sign-in, offline verification, refresh, sign-out (SPEC §11), as the customer's owner.
const created = await client.sessions.createSession({
  email: customer!.email,
  password: PASSWORD,
  customerId: customer!.uuid,
});
const sessionId = created.session?.uuid ?? "";
// The server runs with the default issuer and audience, both "tenancy".
const verifier = new Verifier(jwksOverGrpc(client.transport), { issuer: "tenancy", audience: "tenancy" });
const claims = await verifier.verify(created.accessToken);
check(
  claims.sub === customer!.ownerUserId &&
    claims.sid === sessionId &&
    claims.iss === "tenancy" &&
    claims.aud.includes("tenancy") &&
    claims.customerId === customer!.uuid &&
    claims.owner,
  `claims ${JSON.stringify(claims)} for session ${sessionId}`,
);
const elsewhere = new Verifier(jwksOverHttp(`${baseUrl}/.well-known/jwks.json`), { issuer: "tenancy", audience: "billing" });
const wrongAudience = await elsewhere.verify(created.accessToken).then(
  () => "accepted",
  (error) => (error instanceof VerifyError ? error.rule : String(error)),
);
check(wrongAudience === "wrong_audience", `a verifier for billing said ${wrongAudience}`);
console.log(
  `ok   node: CreateSession ${sessionId}; the access token verifies offline (sub, sid, iss, aud, customer_id), not for another audience`,
);

const refreshed = await client.sessions.refreshSession({ refreshToken: created.refreshToken });
const again = await verifier.verify(refreshed.accessToken);
check(again.sid === claims.sid && again.jti !== claims.jti && again.sub === claims.sub, `refreshed claims ${JSON.stringify(again)}`);
console.log("ok   node: RefreshSession; the new access token verifies, same session");

await client.sessions.revokeSession({ sessionId });
const afterRevoke = await client.sessions.refreshSession({ refreshToken: refreshed.refreshToken }).then(
  () => "refreshed",
  (error) => Code[StatusDetails.fromError(error).code],
);
check(afterRevoke === Code[Code.Unauthenticated], `the revoked session's refresh got ${afterRevoke}`);
console.log("ok   node: RevokeSession; the revoked session's refresh is UNAUTHENTICATED");
