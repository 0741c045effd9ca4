"""The ``google.rpc`` details of a failed call, as typed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class StatusDetails:
    """What the server said about a failed call: the code and message plus whichever
    ``google.rpc`` details it attached (the contract says which codes carry which).

    Details that cannot be decoded are left out rather than raising: the code and
    message are always there.
    """

    code: grpc.StatusCode
    message: str
    field_violations: List[error_details_pb2.BadRequest.FieldViolation] = field(default_factory=list)
    """``google.rpc.BadRequest``: on INVALID_ARGUMENT, one per offending field, named by
    its path in the request (``customer.display_name``)."""
    error_info: Optional[error_details_pb2.ErrorInfo] = None
    """``google.rpc.ErrorInfo``: a machine-readable reason (``EMAIL_TAKEN``, ...)."""
    precondition_violations: List[error_details_pb2.PreconditionFailure.Violation] = field(
        default_factory=list
    )
    quota_violations: List[error_details_pb2.QuotaFailure.Violation] = field(default_factory=list)
    retry_delay: Optional[float] = None
    """``google.rpc.RetryInfo``: seconds the server asks a retry to wait."""
    request_id: Optional[str] = None
    """``google.rpc.RequestInfo``: the id to quote on INTERNAL (it is in the server's log)."""

    @classmethod
    def from_error(cls, error: grpc.RpcError) -> "StatusDetails":
        """Reads a failed call (the ``grpc.RpcError`` a stub raised)."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = (error.details() if hasattr(error, "details") else None) or ""
        details = cls(code=code, message=message)
        try:
            status = rpc_status.from_call(error)
        except Exception:  # an undecodable grpc-status-details-bin trailer
            status = None
        if status is None:
            return details
        for any_detail in status.details:
            details._add(any_detail)
        return details

    def _add(self, any_detail) -> None:
        # Each known type is unpacked on its own: one undecodable detail does not hide
        # the others.
        for message_type, keep in (
            (error_details_pb2.BadRequest, lambda m: self.field_violations.extend(m.field_violations)),
            (error_details_pb2.ErrorInfo, lambda m: setattr(self, "error_info", m)),
            (
                error_details_pb2.PreconditionFailure,
                lambda m: self.precondition_violations.extend(m.violations),
            ),
            (error_details_pb2.QuotaFailure, lambda m: self.quota_violations.extend(m.violations)),
            (
                error_details_pb2.RetryInfo,
                lambda m: setattr(self, "retry_delay", m.retry_delay.ToTimedelta().total_seconds()),
            ),
            (error_details_pb2.RequestInfo, lambda m: setattr(self, "request_id", m.request_id)),
        ):
            if any_detail.Is(message_type.DESCRIPTOR):
                message = message_type()
                try:
                    if any_detail.Unpack(message):
                        keep(message)
                except Exception:
                    pass
                return

    @property
    def reason(self) -> Optional[str]:
        """The ``ErrorInfo`` reason, if any (``EMAIL_TAKEN``, ``ETAG_MISMATCH``, ...)."""
        return self.error_info.reason if self.error_info is not None else None

    def violation(self, field_path: str) -> Optional[str]:
        """The description of the violation of ``field_path``, if that field was named."""
        for violation in self.field_violations:
            if violation.field == field_path:
                return violation.description
        return None

    def violated_fields(self) -> List[str]:
        """The fields named by the violations, in the server's order."""
        return [violation.field for violation in self.field_violations]
