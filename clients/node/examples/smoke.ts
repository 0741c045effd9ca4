/**
 * The clients' smoke scenario through @tenancy/client (.ci/clients.sh):
 * `node dist/examples/smoke.js http://HOST:PORT`, the API key in TENANCY_SMOKE_KEY.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, ServingStatus, StatusDetails, connect, pb, retryCreate } from "../src/index.js";

const PASSWORD = "correct horse battery staple 42";

function check(condition: unknown, message: string): void {
  if (!condition) {
    console.error(`FAIL node: ${message}`);
    process.exit(1);
  }
}

const client = connect(process.argv[2], process.env.TENANCY_SMOKE_KEY ?? "", { timeoutMs: 10_000 });
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
