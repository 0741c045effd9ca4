"""The API key on every call."""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional, Sequence, Tuple

import grpc

Metadata = Sequence[Tuple[str, str]]


class InvalidApiKey(ValueError):
    """The key cannot be sent as a metadata value (empty, or not visible ASCII)."""

    def __init__(self) -> None:
        super().__init__("an API key must be non-empty visible ASCII without spaces")


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class ApiKey(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """A client interceptor that sets ``authorization: Bearer <key>`` on every call.

    :func:`tenancy_client.connect` installs it; to wrap a channel of your own:
    ``grpc.intercept_channel(channel, ApiKey(key))``. An ``authorization`` entry the
    caller passes is replaced, not sent twice. ``timeout`` (seconds), when set, is the
    deadline of every call that sets none of its own.
    """

    def __init__(self, key: str, timeout: Optional[float] = None) -> None:
        # Checked here rather than by the server: a key with a space or a control
        # character would otherwise fail every call with an opaque transport error.
        if not isinstance(key, str) or not key or not all("\x21" <= c <= "\x7e" for c in key):
            raise InvalidApiKey()
        self._header = ("authorization", f"Bearer {key}")
        self._timeout = timeout

    def __repr__(self) -> str:
        return "ApiKey(..)"

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"]
        metadata.append(self._header)
        timeout = details.timeout if details.timeout is not None else self._timeout
        return _CallDetails(
            details.method,
            timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details, requests):
        return continuation(self._details(details), requests)
