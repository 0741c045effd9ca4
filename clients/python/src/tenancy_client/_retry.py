"""Idempotent retry of creates: one ``request_id`` for every attempt."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import grpc

from ._details import StatusDetails

Request = TypeVar("Request")

RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


def is_retryable(code: grpc.StatusCode) -> bool:
    """Whether a failed create may have been applied or may succeed if sent again: the
    connection or server failed (UNAVAILABLE), a transaction lost a race (ABORTED), or
    the answer did not arrive in time (DEADLINE_EXCEEDED)."""
    return code in RETRYABLE


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently :func:`retry_create` retries."""

    max_attempts: int = 5
    """Attempts in all, the first included (at least 1)."""
    initial_backoff: float = 0.1
    """Seconds before the first retry; each later wait doubles, up to ``max_backoff``."""
    max_backoff: float = 5.0

    def backoff(self, attempt: int, error: grpc.RpcError) -> float:
        """The wait after failed attempt ``attempt`` (1-based): exponential with jitter
        between half and all of it, never shorter than the server's ``RetryInfo`` delay
        and never longer than ``max_backoff``."""
        doubled = min(self.initial_backoff * (2 ** min(attempt - 1, 62)), self.max_backoff)
        jittered = doubled * (0.5 + random.random() / 2)
        asked = min(StatusDetails.from_error(error).retry_delay or 0.0, self.max_backoff)
        return max(jittered, asked)


def retry_create(
    call: Callable[..., Any],
    request: Request,
    *,
    policy: Optional[RetryPolicy] = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> Any:
    """Sends a create, retrying it with the same ``request_id`` while it fails with a
    retryable code (:func:`is_retryable`), up to ``policy.max_attempts``; returns the
    response or raises the last ``grpc.RpcError``.

    ``call`` is the stub method (``client.customers.CreateCustomer``); ``kwargs``
    (``timeout``, ``metadata``) go to every attempt. A ``request_id`` already set on
    ``request`` is kept; otherwise a fresh UUID is set once, on a copy, before the first
    attempt. The server answers a repeat of the same ``request_id`` and body with the
    first result and creates nothing.
    """
    policy = policy or RetryPolicy()
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None or "request_id" not in descriptor.fields_by_name:
        raise TypeError(f"{type(request).__name__} has no request_id field: it is not an idempotent create")
    attempt_request = type(request)()
    attempt_request.CopyFrom(request)
    if not attempt_request.request_id:
        attempt_request.request_id = str(uuid.uuid4())
    attempt = 1
    while True:
        try:
            return call(attempt_request, **kwargs)
        except grpc.RpcError as error:
            if not is_retryable(error.code()) or attempt >= max(policy.max_attempts, 1):
                raise
            sleep(policy.backoff(attempt, error))
            attempt += 1
