"""The clients' smoke scenario through the installed tenancy-client package (.ci/clients.sh).

    python smoke.py HOST:PORT     (the API key in TENANCY_SMOKE_KEY)

Health; a customer with its new owner; an account; a member; CheckAccess allowed and
denied; an INVALID_ARGUMENT read through StatusDetails; a create whose first answer is
lost, retried by retry_create with the same request_id, gets the first resource; a
session: sign-in as the owner, its access token verified offline by Verifier (JWKS over
HTTP, and over gRPC), refreshed and verified again, revoked, and the revoked session's
refresh refused.
"""

import os
import secrets
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import tenancy_client
from tenancy.v1 import account_service_pb2 as accounts
from tenancy.v1 import customer_service_pb2 as customers
from tenancy.v1 import session_service_pb2 as sessions
from tenancy.v1 import user_service_pb2 as users

PASSWORD = "correct horse battery staple 42"


def check(condition, message):
    if not condition:
        print(f"FAIL python: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    target, key = sys.argv[1], os.environ["TENANCY_SMOKE_KEY"]
    tag = secrets.token_hex(5)
    with tenancy_client.connect(target, key, timeout=10) as client:
        health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        check(health.status == health_pb2.HealthCheckResponse.SERVING, f"health is {health.status}")
        print("ok   python: health SERVING")

        # The first attempt reaches the server, but its answer is "lost": the helper
        # retries with the same request_id and gets the customer the first one made.
        sent, first = [], []

        def lossy_create(request, **kwargs):
            sent.append(request.request_id)
            response = client.customers.CreateCustomer(request, **kwargs)
            if len(sent) == 1:
                first.append(response.customer.uuid)
                raise LostAnswer()
            return response

        create = customers.CreateCustomerRequest(
            customer=customers.Customer(
                email=f"py-owner-{tag}@example.com", first_name="Py", last_name="Owner",
                customer_type=customers.CUSTOMER_TYPE_PERSONAL),
            password=PASSWORD)
        customer = tenancy_client.retry_create(lossy_create, create, sleep=lambda s: None).customer
        check(len(sent) == 2 and sent[0] == sent[1] and sent[0], f"attempts sent request ids {sent}")
        check(customer.uuid == first[0], f"the retry made {customer.uuid}, the first attempt {first[0]}")
        check(customer.owner_user_id, "the customer has no owner")
        print(f"ok   python: CreateCustomer with its owner {customer.owner_user_id}; "
              "retried with the same request_id it gets the same customer")

        account = tenancy_client.retry_create(client.accounts.CreateAccount, accounts.CreateAccountRequest(
            customer_id=customer.uuid,
            account=accounts.Account(name=f"py {tag}", service_type=accounts.SERVICE_TYPE_WEB_MEETING))).account
        check(account.uuid, "CreateAccount returned no uuid")
        print(f"ok   python: CreateAccount {account.uuid}")

        member = tenancy_client.retry_create(client.users.CreateUser, users.CreateUserRequest(
            user=users.User(email=f"py-member-{tag}@example.com", first_name="Py", last_name="Member"))).user
        client.accounts.AddAccountUser(accounts.AddAccountUserRequest(
            account_id=account.uuid, user_id=member.uuid, permissions=["rooms.read"]))
        print("ok   python: AddAccountUser with rooms.read")

        allowed = client.users.CheckAccess(users.CheckAccessRequest(
            user_id=member.uuid, account_id=account.uuid, permission="rooms.read"))
        denied = client.users.CheckAccess(users.CheckAccessRequest(
            user_id=member.uuid, account_id=account.uuid, permission="rooms.write"))
        check(allowed.allowed, f"rooms.read was denied: {allowed.reason}")
        check(not denied.allowed, "rooms.write was allowed")
        print("ok   python: CheckAccess rooms.read allowed, rooms.write denied")

        try:
            client.customers.CreateCustomer(customers.CreateCustomerRequest(
                customer=customers.Customer(email="not an email", customer_type=customers.CUSTOMER_TYPE_PERSONAL)))
            check(False, "an invalid customer was created")
        except grpc.RpcError as error:
            details = tenancy_client.StatusDetails.from_error(error)
            check(details.code == grpc.StatusCode.INVALID_ARGUMENT, f"got {details.code}")
            fields = details.violated_fields()
            check("customer.email" in fields and "customer.first_name" in fields, f"violations: {fields}")
        print(f"ok   python: INVALID_ARGUMENT names {', '.join(fields)}")

        session_scenario(client, target, customer)


def session_scenario(client, target, customer):
    """Sign-in, offline verification, refresh, sign-out (SPEC §11), as the customer's owner."""
    created = client.sessions.CreateSession(sessions.CreateSessionRequest(
        email=customer.email, password=PASSWORD, customer_id=customer.uuid))
    # The server runs with the default issuer and audience, both "tenancy".
    verifier = tenancy_client.Verifier.over_http(
        f"http://{target}/.well-known/jwks.json", issuer="tenancy", audience="tenancy")
    claims = verifier.verify(created.access_token)
    check(claims.sub == customer.owner_user_id and claims.sid == created.session.uuid
          and claims.iss == "tenancy" and "tenancy" in claims.aud
          and claims.customer_id == customer.uuid and claims.owner,
          f"claims {claims} for session {created.session.uuid}")
    elsewhere = tenancy_client.Verifier.over_grpc(client.channel, issuer="tenancy", audience="billing")
    try:
        elsewhere.verify(created.access_token)
        check(False, "a verifier for billing accepted the token")
    except tenancy_client.VerifyError as error:
        check(error.rule == "wrong_audience", f"a verifier for billing said {error}")
    print(f"ok   python: CreateSession {created.session.uuid}; the access token verifies offline "
          "(sub, sid, iss, aud, customer_id), not for another audience")

    refreshed = client.sessions.RefreshSession(sessions.RefreshSessionRequest(refresh_token=created.refresh_token))
    again = verifier.verify(refreshed.access_token)
    check(again.sid == claims.sid and again.jti != claims.jti and again.sub == claims.sub,
          f"refreshed claims {again}")
    print("ok   python: RefreshSession; the new access token verifies, same session")

    client.sessions.RevokeSession(sessions.RevokeSessionRequest(session_id=created.session.uuid))
    try:
        client.sessions.RefreshSession(sessions.RefreshSessionRequest(refresh_token=refreshed.refresh_token))
        check(False, "the revoked session was refreshed")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.UNAUTHENTICATED, f"the revoked session's refresh got {error.code()}")
    print("ok   python: RevokeSession; the revoked session's refresh is UNAUTHENTICATED")


class LostAnswer(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "the answer was lost (simulated)"

    def trailing_metadata(self):
        return ()


if __name__ == "__main__":
    main()
