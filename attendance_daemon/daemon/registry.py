"""The one validation place for requests (box and hub): size, JSON, transaction, then the command's strict
model from the `@command` registry; and `handle`, which gives every request exactly one Response.

Handlers register with `@command(name, Model)` in `daemon.handlers` and receive the narrow `Services`, never the
daemon. The registry also generates docs/asyncapi.json (cli.asyncapi)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import ValidationError

from ..common.errors import (
    AttendanceError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    format_validation_error,
)
from ..config import PathsConfig
from ..contract import api
from ..mqtt.link import Incoming

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

R = TypeVar("R", bound=api.Request)
Handler = Callable[["Services", Any], Any]
COMMANDS: dict[str, tuple[type[api.Request], Handler]] = {}
# Where a command runs. `dispatcher`: at once, in order. Commands that take seconds go to a worker thread of their
# own lane, so the dispatcher keeps answering everything else meanwhile: `starts` (opening a camera can take the
# whole open time-out; starts are served one after the other, so a second one sees the first one's session and is
# 409 with the state) and `slow` (enrollment decodes and encodes photos, enroll_capture films for seconds while
# holding the camera, so starts meanwhile are 409 at once; downloads hash large files).
Lane = Literal["dispatcher", "starts", "slow"]
LANES: dict[str, Lane] = {}


def command(name: str, model: type[R], lane: Lane = "dispatcher",
            ) -> Callable[[Callable[[Services, R], Any]], Callable[[Services, R], Any]]:
    def register(fn: Callable[[Services, R], Any]) -> Callable[[Services, R], Any]:
        COMMANDS[name] = (model, fn)
        LANES[name] = lane
        return fn

    return register


MAX_TRANSACTION_CHARS = 1024
# A request is read whole before anything else: the largest legitimate one is an `enroll` with photos (20 MiB
# decoded, 4/3 of that in base64, plus JSON).
MAX_REQUEST_BYTES = 32 * 1024 * 1024


class _Refused(InvalidRequest):
    """A refusal that could still read the request's transaction, to echo it."""

    def __init__(self, message: str, transaction: Any) -> None:
        super().__init__(message)
        self.transaction = transaction


def lane_of(name: str | None) -> Lane:
    return LANES.get(name or "", "dispatcher")


def refuse(name: str, incoming: Incoming, error: AttendanceError, max_parse: int | None = None) -> api.Response:
    """An error answer without running the command (e.g. its queue is full); the transaction is echoed, read
    only from a payload of at most `max_parse` bytes when that is given (null beyond)."""
    transaction: Any = None
    try:
        if max_parse is None or len(incoming.payload) <= max_parse:
            transaction, _ = parse(incoming)
    except _Refused as exc:
        transaction = exc.transaction
    except AttendanceError:
        transaction = None
    if not _json_scalar(transaction):
        transaction = None
    return api.Response(transaction=transaction, status="error", code=error.code, error=error.message,
                        data=error.data)


def parse(incoming: Incoming) -> tuple[Any, dict[str, Any]]:
    """(transaction, request object); raises InvalidRequest (a _Refused carrying the transaction when it could
    be read)."""
    if len(incoming.payload) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"payload: {len(incoming.payload)} bytes; at most {MAX_REQUEST_BYTES}")
    if not incoming.payload.strip():
        if incoming.retain:
            raise _Refused(_RETAINED, None)
        return None, {}
    try:
        obj = json.loads(incoming.payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"payload: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"payload: invalid JSON ({exc.msg} at position {exc.pos})") from exc
    except RecursionError as exc:
        raise InvalidRequest("payload: JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise InvalidRequest(f"payload: must be a JSON object, got {type(obj).__name__}")
    transaction = obj.get("transaction")
    if not _json_scalar(transaction):
        raise InvalidRequest("transaction: must be a string, number, boolean or null")
    if isinstance(transaction, str) and len(transaction) > MAX_TRANSACTION_CHARS:
        raise InvalidRequest(f"transaction: must be at most {MAX_TRANSACTION_CHARS} characters")
    if incoming.retain:
        raise _Refused(_RETAINED, transaction)
    return transaction, obj


_RETAINED = "request must not be retained (it would replay on every reconnect)"


F = TypeVar("F")


def validated(registry: dict[str, tuple[type[api.Request], F]], name: str, obj: Any) -> tuple[F, api.Request]:
    """A registry's handler and its strict model of the request (box and hub): 404 listing the known commands,
    400 naming each bad field."""
    if name not in registry:
        raise NotFound(f"unknown command '{name[:64]}' (known: {', '.join(sorted(registry))})")
    model, fn = registry[name]
    try:
        return fn, model.model_validate(obj)
    except ValidationError as exc:
        raise InvalidRequest(format_validation_error(exc)) from exc


def handle(services: Services, name: str, incoming: Incoming) -> api.Response:
    """Never raises: malformed input, unknown commands and internal faults all become a Response."""
    transaction: Any = None
    try:
        try:
            transaction, obj = parse(incoming)
        except _Refused as exc:
            transaction = exc.transaction
            raise
        fn, request = validated(COMMANDS, name, obj)
        data = fn(services, request)
        return api.Response(transaction=transaction, status="ok", code=200, data=_dump(data))
    except AttendanceError as exc:
        return api.Response(transaction=transaction, status="error", code=exc.code,
                            error=public_text(services.cfg.paths, exc.message), data=exc.data)
    except Exception as exc:
        log.exception("internal error handling %s", name[:64])
        return api.Response(transaction=transaction, status="error", code=500,
                            error=public_text(services.cfg.paths, f"internal error: {type(exc).__name__}: {exc}"))


def public_text(p: PathsConfig, message: str) -> str:
    """Error texts leave the box (answers, and texts the daemon publishes on its own, such as a lesson that could
    not start): no absolute paths of it, no credentials, at most 300 characters."""
    return p.public_text(message)


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _dump(data: Any) -> Any:
    if isinstance(data, api.Payload):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_dump(d) for d in data]
    return data
