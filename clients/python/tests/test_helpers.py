"""Unit tests of the three helpers, without a server."""

import unittest
import uuid

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

import tenancy_client
from tenancy.v1 import account_service_pb2


class FakeError(grpc.RpcError, grpc.Call):
    """A failed call as a stub raises it, optionally with google.rpc details."""

    def __init__(self, code, message="", details=()):
        self._code, self._message = code, message
        self._trailers = ()
        if details:
            status = status_pb2.Status(code=code.value[0], message=message)
            for detail in details:
                packed = any_pb2.Any()
                packed.Pack(detail)
                status.details.append(packed)
            self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self):
        return self._code

    def details(self):
        return self._message

    def trailing_metadata(self):
        return self._trailers

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


class Details:
    method, timeout, metadata, credentials, wait_for_ready, compression = (
        "/m", None, None, None, None, None)


class ApiKeyTest(unittest.TestCase):
    def sent(self, key, metadata=None, timeout=None):
        details = Details()
        details.metadata, details.timeout = metadata, timeout
        captured = []
        key.intercept_unary_unary(lambda d, r: captured.append(d), details, None)
        return captured[0]

    def test_every_call_carries_the_bearer_key(self):
        sent = self.sent(tenancy_client.ApiKey("k3y-abc"))
        self.assertEqual(list(sent.metadata), [("authorization", "Bearer k3y-abc")])

    def test_a_key_set_by_the_caller_is_replaced_not_doubled(self):
        sent = self.sent(tenancy_client.ApiKey("right"), [("authorization", "Bearer wrong"), ("x", "1")])
        self.assertEqual(sorted(sent.metadata), [("authorization", "Bearer right"), ("x", "1")])

    def test_the_default_timeout_applies_only_to_calls_without_one(self):
        key = tenancy_client.ApiKey("k", timeout=3.0)
        self.assertEqual(self.sent(key).timeout, 3.0)
        self.assertEqual(self.sent(key, timeout=1.0).timeout, 1.0)

    def test_keys_that_cannot_be_sent_are_refused(self):
        for bad in ["", "with space", "tab\tkey", "nul\0key", "é"]:
            with self.assertRaises(tenancy_client.InvalidApiKey, msg=repr(bad)):
                tenancy_client.ApiKey(bad)

    def test_repr_hides_the_key(self):
        self.assertNotIn("secret", repr(tenancy_client.ApiKey("secret-key")))


class StatusDetailsTest(unittest.TestCase):
    def test_field_violations_are_read_in_order(self):
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="customer.display_name", description="is required"),
            error_details_pb2.BadRequest.FieldViolation(field="owner.email", description="is not an email address"),
        ])
        details = tenancy_client.StatusDetails.from_error(
            FakeError(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", [bad]))
        self.assertEqual(details.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(details.violated_fields(), ["customer.display_name", "owner.email"])
        self.assertEqual(details.violation("owner.email"), "is not an email address")
        self.assertIsNone(details.violation("customer.slug"))
        self.assertIsNone(details.reason)

    def test_reason_retry_delay_preconditions_and_request_id(self):
        info = error_details_pb2.ErrorInfo(reason="EMAIL_TAKEN", domain="tenancy.v1", metadata={"field": "email"})
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=200_000_000))
        pre = error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(type="STATE", subject="customer")])
        req = error_details_pb2.RequestInfo(request_id="req-1")
        details = tenancy_client.StatusDetails.from_error(
            FakeError(grpc.StatusCode.ALREADY_EXISTS, "taken", [info, retry, pre, req]))
        self.assertEqual(details.reason, "EMAIL_TAKEN")
        self.assertEqual(details.error_info.metadata["field"], "email")
        self.assertAlmostEqual(details.retry_delay, 0.2)
        self.assertEqual(details.precondition_violations[0].subject, "customer")
        self.assertEqual(details.request_id, "req-1")
        self.assertEqual(details.field_violations, [])

    def test_a_status_without_details_keeps_code_and_message(self):
        details = tenancy_client.StatusDetails.from_error(FakeError(grpc.StatusCode.NOT_FOUND, "customer not found"))
        self.assertEqual((details.code, details.message), (grpc.StatusCode.NOT_FOUND, "customer not found"))
        self.assertIsNone(details.error_info)


class RetryCreateTest(unittest.TestCase):
    def server(self, errors):
        seen = []

        def call(request, **kwargs):
            seen.append(request.request_id)
            if len(seen) <= len(errors):
                raise errors[len(seen) - 1]
            return len(seen)

        return seen, call

    def test_retries_with_one_generated_uuid_until_success(self):
        seen, call = self.server([FakeError(grpc.StatusCode.UNAVAILABLE), FakeError(grpc.StatusCode.ABORTED),
                                  FakeError(grpc.StatusCode.DEADLINE_EXCEEDED)])
        request = account_service_pb2.CreateAccountRequest(customer_id="c")
        answer = tenancy_client.retry_create(call, request, sleep=lambda s: None)
        self.assertEqual(answer, 4)
        uuid.UUID(seen[0])
        self.assertEqual(seen, [seen[0]] * 4)
        self.assertEqual(request.request_id, "", "the caller's request is not changed")

    def test_a_request_id_set_by_the_caller_is_kept(self):
        seen, call = self.server([FakeError(grpc.StatusCode.UNAVAILABLE)])
        request = account_service_pb2.CreateAccountRequest(request_id="0190c4e0-0000-7000-8000-000000000001")
        tenancy_client.retry_create(call, request, sleep=lambda s: None)
        self.assertEqual(seen, ["0190c4e0-0000-7000-8000-000000000001"] * 2)

    def test_other_codes_are_raised_at_once(self):
        for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INTERNAL):
            seen, call = self.server([FakeError(code)])
            with self.assertRaises(grpc.RpcError) as raised:
                tenancy_client.retry_create(call, account_service_pb2.CreateAccountRequest(), sleep=lambda s: None)
            self.assertEqual(raised.exception.code(), code)
            self.assertEqual(len(seen), 1, f"{code} was retried")

    def test_gives_up_after_max_attempts_and_backs_off_exponentially(self):
        seen, call = self.server([FakeError(grpc.StatusCode.UNAVAILABLE)] * 10)
        waits = []
        policy = tenancy_client.RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=10)
        with self.assertRaises(grpc.RpcError):
            tenancy_client.retry_create(call, account_service_pb2.CreateAccountRequest(), policy=policy,
                                        sleep=waits.append)
        self.assertEqual(len(seen), 3)
        self.assertTrue(0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2, waits)

    def test_the_servers_retry_delay_is_a_floor_and_max_backoff_a_ceiling(self):
        policy = tenancy_client.RetryPolicy(initial_backoff=0.01, max_backoff=2)
        asked = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1))
        self.assertGreaterEqual(policy.backoff(1, FakeError(grpc.StatusCode.UNAVAILABLE, "", [asked])), 1)
        self.assertLessEqual(policy.backoff(30, FakeError(grpc.StatusCode.UNAVAILABLE)), 2)

    def test_a_request_without_request_id_is_refused(self):
        with self.assertRaises(TypeError):
            tenancy_client.retry_create(lambda r: r, account_service_pb2.GetAccountRequest())


if __name__ == "__main__":
    unittest.main()
