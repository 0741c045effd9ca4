import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { InvalidApiKey, StatusDetails, apiKey, retryCreate } from "../src/index.js";

test("every call carries the bearer key, replacing one the caller set", async () => {
  const header = new Headers({ authorization: "Bearer wrong" });
  // Headers.get joins repeated values with ", ": a doubled key would show here.
  const next = async (request: { header: Headers }) => request.header.get("authorization");
  const seen = await apiKey("right")(next as never)({ header } as never);
  assert.equal(seen, "Bearer right");
});

test("keys that cannot be sent are refused", () => {
  for (const bad of ["", "with space", "tab\tkey", "nul\0key", "é"]) assert.throws(() => apiKey(bad), InvalidApiKey, bad);
});

test("field violations and the reason are read from the details", () => {
  const bad = create(BadRequestSchema, {
    fieldViolations: [
      { field: "customer.email", description: "is not an email address" },
      { field: "owner.email", description: "is required" },
    ],
  });
  const info = create(ErrorInfoSchema, { reason: "EMAIL_TAKEN", domain: "tenancy.v1" });
  const error = new ConnectError("invalid", Code.InvalidArgument, undefined, [
    { desc: BadRequestSchema, value: bad },
    { desc: ErrorInfoSchema, value: info },
  ]);
  const details = StatusDetails.fromError(error);
  assert.equal(details.code, Code.InvalidArgument);
  assert.deepEqual(details.violatedFields(), ["customer.email", "owner.email"]);
  assert.equal(details.violation("owner.email"), "is required");
  assert.equal(details.reason, "EMAIL_TAKEN");
});

function server(codes: Code[]) {
  const seen: string[] = [];
  const call = async (request: { requestId: string }) => {
    seen.push(request.requestId);
    if (seen.length <= codes.length) throw new ConnectError("no", codes[seen.length - 1]);
    return seen.length;
  };
  return { seen, call };
}
const noWait = { sleep: async () => {} };

test("retries with one generated uuid until success", async () => {
  const { seen, call } = server([Code.Unavailable, Code.Aborted, Code.DeadlineExceeded]);
  const request = { requestId: "" };
  assert.equal(await retryCreate(call, request, noWait), 4);
  assert.match(seen[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4/);
  assert.deepEqual(seen, [seen[0], seen[0], seen[0], seen[0]]);
  assert.equal(request.requestId, "", "the caller's request is not changed");
});

test("a request id set by the caller is kept; other codes are thrown at once", async () => {
  const kept = server([Code.Unavailable]);
  await retryCreate(kept.call, { requestId: "r-1" }, noWait);
  assert.deepEqual(kept.seen, ["r-1", "r-1"]);
  for (const code of [Code.InvalidArgument, Code.AlreadyExists, Code.Internal]) {
    const once = server([code]);
    await assert.rejects(retryCreate(once.call, { requestId: "" }, noWait), (e: ConnectError) => e.code === code);
    assert.equal(once.seen.length, 1);
  }
});

test("gives up after maxAttempts with exponential waits", async () => {
  const { seen, call } = server(Array(10).fill(Code.Unavailable));
  const waits: number[] = [];
  await assert.rejects(
    retryCreate(call, { requestId: "" }, { maxAttempts: 3, initialBackoffMs: 100, sleep: async (ms) => void waits.push(ms) }),
  );
  assert.equal(seen.length, 3);
  assert.ok(waits[0] >= 50 && waits[0] <= 100 && waits[1] >= 100 && waits[1] <= 200, String(waits));
});
