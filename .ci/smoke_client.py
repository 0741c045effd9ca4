#!/usr/bin/env python3
"""Python gRPC client half of .ci/smoke.sh: talks to a running tenancy server through
stubs generated from proto/, as another team's Python client would.

    smoke_client.py health ADDR           exit 0 if the server reports SERVING
    smoke_client.py run ADDR --stubs DIR  health, CreateUser, GetUser, auth checks

The API key comes from the TENANCY_SMOKE_KEY environment variable.
"""

import argparse
import os
import secrets
import sys
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICES = (
    "tenancy.v1.CustomerService",
    "tenancy.v1.AccountService",
    "tenancy.v1.UserService",
    "tenancy.v1.EventService",
)
PASSWORD = "correct horse battery staple 42"
TIMEOUT = 10.0


class SmokeFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise SmokeFailure(message)


def health_status(channel, service, timeout):
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def cmd_health(args):
    with grpc.insecure_channel(args.addr) as channel:
        try:
            status = health_status(channel, "", timeout=2.0)
        except grpc.RpcError as err:
            if args.verbose:
                print(f"health: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    if args.verbose:
        print(f"health: {status}", file=sys.stderr)
    return 0 if status == "SERVING" else 1


def expect_code(call, code, what):
    try:
        call()
    except grpc.RpcError as err:
        check(
            err.code() == code,
            f"{what}: expected {code.name}, got {err.code().name}: {err.details()}",
        )
        return err
    raise SmokeFailure(f"{what}: expected {code.name}, but the call succeeded")


def cmd_run(args):
    key = os.environ.get("TENANCY_SMOKE_KEY", "")
    check(key, "TENANCY_SMOKE_KEY is not set")
    sys.path.insert(0, args.stubs)
    from tenancy.v1 import user_service_pb2 as pb
    from tenancy.v1 import user_service_pb2_grpc as pb_grpc

    auth = (("authorization", f"Bearer {key}"),)

    with grpc.insecure_channel(args.addr) as channel:
        # (a) health: the server as a whole and each tenancy service.
        status = health_status(channel, "", TIMEOUT)
        check(status == "SERVING", f'Health/Check("") is {status}, expected SERVING')
        for service in SERVICES:
            status = health_status(channel, service, TIMEOUT)
            check(status == "SERVING", f"Health/Check({service}) is {status}, expected SERVING")
        print("ok   health: SERVING (server and 4 services)")

        users = pb_grpc.UserServiceStub(channel)

        # (b) CreateUser, then GetUser by each identifier form.
        email = f"smoke-{secrets.token_hex(6)}@example.com"
        create = pb.CreateUserRequest(password=PASSWORD, request_id=str(uuid.uuid4()))
        create.user.email = email
        create.user.first_name = "Smoke"
        create.user.last_name = "Test"
        created = users.CreateUser(create, metadata=auth, timeout=TIMEOUT).user
        check(created.uuid, "CreateUser returned a user without uuid")
        check(created.ulid, "CreateUser returned a user without ulid")
        check(created.email == email, f"CreateUser email is {created.email!r}, expected {email!r}")
        check(created.has_password, "CreateUser with a password returned has_password = false")
        print(f"ok   CreateUser: uuid={created.uuid} ulid={created.ulid}")

        retried = users.CreateUser(create, metadata=auth, timeout=TIMEOUT).user
        check(
            retried.uuid == created.uuid,
            f"CreateUser retried with the same request_id created {retried.uuid}, "
            f"expected the first result {created.uuid}",
        )
        print("ok   CreateUser retry with the same request_id returns the first user")

        by_uuid = pb.GetUserRequest(user_id=created.uuid)
        lookups = (
            ("uuid", by_uuid),
            ("ulid", pb.GetUserRequest(user_id=created.ulid)),
            ("email", pb.GetUserRequest(email=email)),
        )
        for name, request in lookups:
            got = users.GetUser(request, metadata=auth, timeout=TIMEOUT).user
            check(got.email == email, f"GetUser by {name}: email {got.email!r}, expected {email!r}")
            check(got.ulid, f"GetUser by {name}: empty ulid")
            check(got.uuid == created.uuid, f"GetUser by {name}: uuid {got.uuid}, expected {created.uuid}")
        print("ok   GetUser by uuid, ulid and email")

        # (c) the same call without a key, or with a wrong one, is UNAUTHENTICATED.
        expect_code(
            lambda: users.GetUser(by_uuid, timeout=TIMEOUT),
            grpc.StatusCode.UNAUTHENTICATED,
            "GetUser without an API key",
        )
        wrong = (("authorization", f"Bearer {secrets.token_urlsafe(30)}"),)
        expect_code(
            lambda: users.GetUser(by_uuid, metadata=wrong, timeout=TIMEOUT),
            grpc.StatusCode.UNAUTHENTICATED,
            "GetUser with an unknown API key",
        )
        print("ok   GetUser without a key or with an unknown key: UNAUTHENTICATED")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    health = sub.add_parser("health", help="exit 0 if Health/Check(\"\") is SERVING")
    health.add_argument("addr", help="host:port")
    health.add_argument("-v", "--verbose", action="store_true")
    run = sub.add_parser("run", help="the smoke checks")
    run.add_argument("addr", help="host:port")
    run.add_argument("--stubs", required=True, help="directory of the generated stubs")
    args = parser.parse_args()

    try:
        return cmd_health(args) if args.command == "health" else cmd_run(args)
    except SmokeFailure as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as err:
        print(f"FAIL unexpected RPC error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
