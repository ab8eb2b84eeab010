"""Shared shapes: the bounded input types every request model and query parameter uses,
pagination and error bodies.

Bounded input types: a request can only carry values the API can handle — no infinity
or NaN (`1e400` parses as infinity), no integer wider than the widest point type, no
time given as a bare epoch number or outside the years the API can store, no unbounded
text. Anything else is refused with 422 naming the field, before a route runs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field, StrictBool

MIN_INT = -(2**63)  # the widest signed point type (int64)
MAX_INT = 2**64 - 1  # the widest unsigned point type (uint64)
MAX_MAGNITUDE = float(2**64)  # no setpoint of a machine is larger than the widest integer
MAX_TEXT = 500  # the longest string point (250 registers, 2 characters each)
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_AHEAD = dt.timedelta(days=366)
"""Times lie between EARLIEST and one year from now (a KPI window may end in the future;
nothing the API handles lies further ahead)."""
_NUMBER = re.compile(r"^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?\s*$")

BoundedInt = Annotated[int, Field(ge=MIN_INT, le=MAX_INT)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
BoundedText = Annotated[str, Field(max_length=MAX_TEXT)]
BoundedValue = StrictBool | BoundedInt | FiniteFloat | BoundedText
"""A point value in a request: true/false, a whole number within the widest point type,
a finite number of at most 2^64 in magnitude, or text of at most MAX_TEXT characters."""


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("a time is ISO 8601 text with a UTC offset "
                         "(2026-11-25T20:00:00Z), not a number")
    return value


def _within_range(value: dt.datetime) -> dt.datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    latest = dt.datetime.now(dt.UTC) + MAX_AHEAD
    if not EARLIEST <= aware <= latest:
        raise ValueError(f"a time must lie between {EARLIEST:%Y-%m-%d} and one year from "
                         "now")
    return value


ApiTime = Annotated[dt.datetime, BeforeValidator(_not_a_number),
                    AfterValidator(_within_range)]
"""A time in a query parameter (ISO 8601; a missing offset is refused by the window)."""
AwareApiTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number),
                         AfterValidator(_within_range)]
"""A time in a request body: ISO 8601 with a UTC offset."""
AwareTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""A time in a request body whose route checks a tighter window of its own (the
stocktake: api/stocktake.py, 422 `bad_time`)."""

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
