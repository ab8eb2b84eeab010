"""Shared response shapes: pagination and error bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Responses = dict[int | str, dict[str, Any]]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["out_of_range"])
    message: str = Field(examples=["130 is outside speed_pct's range [10, 120]"])


class ErrorOut(BaseModel):
    """Body of every error answer. `status` is `rejected` for 409/422, else `error`."""

    status: str = Field(examples=["rejected"])
    error: ErrorDetail


class PageInfo(BaseModel):
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="offset of the next page; null at the end")


def page_info(limit: int, offset: int, returned: int, more: bool) -> PageInfo:
    return PageInfo(limit=limit, offset=offset, next_offset=offset + returned if more else None)


ERRORS: Responses = {
    401: {"model": ErrorOut, "description": "missing or unknown API key"},
    403: {"model": ErrorOut, "description": "the key's role does not allow this"},
}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "unknown machine, line or id"}}
UNPROCESSABLE: Responses = {422: {"model": ErrorOut,
                                  "description": "refused by the plant file's rules"}}
UNAVAILABLE: Responses = {503: {"model": ErrorOut, "description": "broker or database unavailable"}}


def error_body(status: int, code: str, message: str) -> dict[str, object]:
    """The JSON body of an error answer (see ErrorOut)."""
    kind = "rejected" if status in (409, 422) else "error"
    return {"status": kind, "error": {"code": code, "message": message}}
