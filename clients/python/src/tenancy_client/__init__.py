"""Client for the tenancy gRPC service.

- ``tenancy.v1``: the messages (``*_pb2``, typed by ``.pyi`` files) and stubs
  (``*_pb2_grpc``), generated from the repository's ``proto/`` when this package is
  built (never edited by hand).
- :func:`connect` / :class:`Client`: a channel whose every call carries the API key
  (``authorization: Bearer <key>``), with optional TLS (:class:`Tls`); :class:`ApiKey`
  is the interceptor, for a channel of your own.
- :class:`StatusDetails`: the ``google.rpc`` details of a failed call (field
  violations, ``ErrorInfo`` reasons, retry delays) as typed values.
- :func:`retry_create`: a create retried with one ``request_id`` on UNAVAILABLE,
  ABORTED and DEADLINE_EXCEEDED, so the server answers every attempt with the first
  result.
- :class:`Verifier`: access tokens (sessions' JWTs) verified offline against the
  JWKS, cached by ``kid`` (:func:`jwks_over_grpc`, :func:`jwks_over_http`): typed
  :class:`AccessClaims`, or a :class:`VerifyError` whose ``rule`` names what
  failed.

::

    import grpc
    import tenancy_client
    from tenancy.v1 import user_service_pb2 as users

    with tenancy_client.connect("127.0.0.1:50051", "my-api-key") as client:
        request = users.CreateUserRequest(
            user=users.User(email="ada@example.com", first_name="Ada", last_name="Lovelace"))
        try:
            created = tenancy_client.retry_create(client.users.CreateUser, request, timeout=5)
        except grpc.RpcError as error:
            for violation in tenancy_client.StatusDetails.from_error(error).field_violations:
                print(violation.field, violation.description)

    # In a service that verifies tenancy's access tokens (one verifier per process):
    verifier = tenancy_client.Verifier.over_http(
        "http://127.0.0.1:50051/.well-known/jwks.json", issuer="tenancy", audience="billing")
    try:
        claims = verifier.verify(token)
        print(claims.sub, claims.sid, claims.permissions)
    except tenancy_client.VerifyError as error:
        print("refused:", error.rule, error.detail)  # "expired": refresh the session
"""

from ._auth import ApiKey, InvalidApiKey
from ._channel import Client, Tls, connect
from ._details import StatusDetails
from ._jwks import KeyCache, jwks_over_grpc, jwks_over_http
from ._retry import RetryPolicy, is_retryable, retry_create
from ._verify import AccessClaims, Rule, Verifier, VerifyError

__all__ = [
    "AccessClaims",
    "ApiKey",
    "Client",
    "InvalidApiKey",
    "KeyCache",
    "RetryPolicy",
    "Rule",
    "StatusDetails",
    "Tls",
    "Verifier",
    "VerifyError",
    "connect",
    "is_retryable",
    "jwks_over_grpc",
    "jwks_over_http",
    "retry_create",
]
