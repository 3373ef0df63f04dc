"""The request and error shapes that the sandbox's API and its Reporting API share.

A leaf: it imports nothing of the sandbox, so `api.py` can dispatch to `reporting_api.py` and
both can raise the same errors without importing each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # without query string
    query: dict[str, list[str]]
    body: bytes
    base_url: str  # scheme://host[:port] from the request's Host header


class ApiError(Exception):
    """An error answer in Klaviyo's JSON:API error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        parameter: str | None = None,
        pointer: str | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.parameter = parameter
        self.pointer = pointer

    def body(self) -> dict:
        return error_body(
            self.status, self.code, self.title, self.detail, parameter=self.parameter, pointer=self.pointer
        )


def error_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    parameter: str | None = None,
    pointer: str | None = None,
) -> dict:
    error: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "status": status,
        "code": code,
        "title": title,
        "detail": detail,
    }
    if parameter or pointer:
        error["source"] = {"parameter": parameter} if parameter else {"pointer": pointer}
    return {"errors": [error]}


def bad_request(detail: str, parameter: str | None = None, pointer: str | None = None) -> ApiError:
    return ApiError(400, "invalid", "Invalid input.", detail, parameter=parameter, pointer=pointer)
