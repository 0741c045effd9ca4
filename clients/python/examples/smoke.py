"""The clients' smoke scenario through the installed tenancy-client package (.ci/clients.sh).

    python smoke.py HOST:PORT     (the API key in TENANCY_SMOKE_KEY)

Health; a customer with its new owner; an account; a member; CheckAccess allowed and
denied; an INVALID_ARGUMENT read through StatusDetails; a create whose first answer is
lost, retried by retry_create with the same request_id, gets the first resource.
"""

import os
import secrets
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import tenancy_client
from tenancy.v1 import account_service_pb2 as accounts
from tenancy.v1 import customer_service_pb2 as customers
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


class LostAnswer(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "the answer was lost (simulated)"

    def trailing_metadata(self):
        return ()


if __name__ == "__main__":
    main()
