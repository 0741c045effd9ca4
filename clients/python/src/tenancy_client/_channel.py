"""Connecting: a target, the API key, and optional TLS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import grpc

from tenancy.v1 import (
    account_service_pb2_grpc,
    customer_service_pb2_grpc,
    event_service_pb2_grpc,
    session_service_pb2_grpc,
    user_service_pb2_grpc,
)

from ._auth import ApiKey


@dataclass(frozen=True)
class Tls:
    """TLS for the connection.

    ``ca_pem``: the CA (PEM) that signed the server's certificate (the platform's
    services use a private CA; without it, the system's roots). ``domain``: the name
    the certificate must carry when it differs from the target's host (e.g. connecting
    by IP address). ``cert_pem`` and ``key_pem``: a client identity, for a server that
    asks for one (``--tls-client-ca``).
    """

    ca_pem: Optional[bytes] = None
    domain: Optional[str] = None
    cert_pem: Optional[bytes] = None
    key_pem: Optional[bytes] = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_pem is None) != (self.key_pem is None):
            raise ValueError("a client identity needs both cert_pem and key_pem")
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )


class Client:
    """One channel shared by the service stubs, each call carrying the API key.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, channel: grpc.Channel, key: ApiKey) -> None:
        self.channel = channel
        """The channel without the key, e.g. for ``grpc.health.v1.Health``."""
        intercepted = grpc.intercept_channel(channel, key)
        self.users = user_service_pb2_grpc.UserServiceStub(intercepted)
        self.customers = customer_service_pb2_grpc.CustomerServiceStub(intercepted)
        self.accounts = account_service_pb2_grpc.AccountServiceStub(intercepted)
        self.events = event_service_pb2_grpc.EventServiceStub(intercepted)
        self.sessions = session_service_pb2_grpc.SessionServiceStub(intercepted)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(
    target: str,
    key: str,
    *,
    tls: Optional[Tls] = None,
    timeout: Optional[float] = None,
    options: Optional[List[Tuple[str, object]]] = None,
) -> Client:
    """A :class:`Client` for ``target`` (``host:port``) whose every call carries ``key``.

    Plaintext unless ``tls`` is given. ``timeout`` (seconds) is the deadline of every
    call that sets none. The channel connects on the first call; an invalid key raises
    :class:`InvalidApiKey` here, before any connection.
    """
    api_key = ApiKey(key, timeout=timeout)
    channel_options = list(options or [])
    if tls is None:
        channel = grpc.insecure_channel(target, options=channel_options)
    else:
        if tls.domain:
            channel_options.append(("grpc.ssl_target_name_override", tls.domain))
        channel = grpc.secure_channel(target, tls.credentials(), options=channel_options)
    return Client(channel, api_key)
