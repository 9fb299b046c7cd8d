"""The hub's requests about its boxes: `fleet` (with each box's roster status), which sections each box teaches
(`assign`, `unassign`, `assignments`) and the results kept out of the reports (`quarantine`, `release_session`).
Registered in the registry of requests.py (hub/__init__.py imports both)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictInt, StrictStr

from ..common.errors import NotFound
from ..common.names import LookupText, SafeId
from ..contract import api
from . import requests as hub_requests
from .requests import HubContext, hub_command

DEVICE_PATTERN = r"^[a-z0-9_-]{1,64}$"  # a box's device id (config mqtt.device_id), as the hub ingests it
DeviceId = Annotated[StrictStr, Field(pattern=DEVICE_PATTERN)]
MAX_REPORTED_SECTIONS = 100  # of a box's own info.rosters, beyond those it is assigned (as roster.sections)
MAX_REASON = 300  # characters of a box's refusal shown in `fleet`


class AssignRequest(api.Request):
    device_id: DeviceId
    section: SafeId


class AssignmentsRequest(api.Request):
    device_id: DeviceId | None = None


class QuarantineRequest(api.Request):
    device_id: DeviceId | None = None
    limit: StrictInt = Field(1000, ge=1, le=hub_requests.MAX_REPORT_ROWS)


class ReleaseRequest(api.Request):
    device_id: DeviceId
    session_id: LookupText


def roster_status(assigned: list[str], published: dict[str, dict[str, Any]], info: Any) -> dict[str, Any]:
    """Per section, how a box stands with the hub's roster, from what the box says in its retained info (any
    JSON: a broken or hostile box must not break `fleet`): `applied` (the published version), `pending` (staged
    until its session ends), `refused` (its Info problems say why: `roster <section>: refused: <why>`),
    `behind` (not there yet: offline, or the bridge is down), `unpublished` (the hub has no roster for it yet),
    `unassigned` (the box holds a hub roster the hub no longer sends it)."""
    info = info if isinstance(info, dict) else {}
    rosters = info.get("rosters") if isinstance(info.get("rosters"), dict) else {}
    problems = [p for p in info.get("problems", []) if isinstance(p, str)] if isinstance(
        info.get("problems"), list) else []
    extra = sorted(s for s in rosters if isinstance(s, str) and s not in assigned)[:MAX_REPORTED_SECTIONS]
    out: dict[str, Any] = {}
    for section in [*assigned, *extra]:
        entry = rosters.get(section)
        entry = entry if isinstance(entry, dict) else {}
        applied = entry.get("version") if isinstance(entry.get("version"), int) else None
        pending = entry.get("pending") if isinstance(entry.get("pending"), int) else None
        hub = published.get(section, {}).get("version")
        prefix = f"roster {section}: refused: "
        reason = next((p[len(prefix):][:MAX_REASON] for p in problems if p.startswith(prefix)), None)
        if section not in assigned:
            state = "unassigned"
        elif hub is None:
            state = "unpublished"
        elif applied == hub:
            state = "applied"
        elif reason is not None:
            state = "refused"
        elif pending == hub:
            state = "pending"
        else:
            state = "behind"
        out[section] = {"state": state, "published": hub, "applied": applied, "pending": pending,
                        "reason": reason}
    return out


@hub_command("fleet", api.Empty)
def fleet(ctx: HubContext, r: api.Empty) -> dict[str, Any]:
    """Every box seen: online (availability online and the bridge not reported down), mode, rosters, its
    sections and how it stands with each (a refused roster names the box's reason), its quarantined sessions, the
    messages of it the hub did not store; and the hub's own health. 503 while the database is unreachable."""
    hub = ctx.status()
    refused = hub.get("refused", {})  # also of boxes that never sent availability, info or state
    published = ctx.store.rosters()
    assigned = ctx.store.assignments()
    quarantined = ctx.store.quarantine_counts()
    devices = []
    for d in ctx.store.devices():
        info, state = d["info"] or {}, d["state"] or {}
        info = info if isinstance(info, dict) else {}
        state = state if isinstance(state, dict) else {}
        session = state.get("session")  # what a box published: any JSON (one broken box must not break fleet)
        sections = assigned.get(d["device_id"], [])
        devices.append({
            "device_id": d["device_id"],
            "online": d["availability"] == "online" and d["bridge"] != "down",
            "availability": d["availability"], "bridge": d["bridge"],
            "mode": state.get("mode"), "session": session.get("name") if isinstance(session, dict) else None,
            "rosters": info.get("rosters", {}), "problems": info.get("problems", []),
            "version": info.get("version"), "last_seen": d["last_seen"],
            "sections": sections, "roster_status": roster_status(sections, published, info),
            "quarantined": quarantined.get(d["device_id"], 0),
            "refused": refused.get(d["device_id"], {}),
        })
    return {"devices": devices, "rosters": published, "hub": hub}


@hub_command("assign", AssignRequest)
def assign(ctx: HubContext, r: AssignRequest) -> dict[str, Any]:
    """The box teaches the section: its results for it count, and it gets the section's roster (the current
    version at once, on its own topic)."""
    new = ctx.store.assign(r.device_id, r.section)
    return {"device_id": r.device_id, "section": r.section, "assigned": new,
            "roster": ctx.rosters.send_to(r.device_id, r.section)}


@hub_command("unassign", AssignRequest)
def unassign(ctx: HubContext, r: AssignRequest) -> dict[str, Any]:
    """The box no longer teaches the section: its retained roster there is deleted (the box keeps what it
    applied; `roster.sections` on the box decides that), its later results for it are quarantined."""
    if not ctx.store.unassign(r.device_id, r.section):
        raise NotFound(f"section: '{r.section}' is not assigned to '{r.device_id}'")
    ctx.rosters.withdraw(r.device_id, r.section)
    return {"device_id": r.device_id, "section": r.section, "unassigned": True}


@hub_command("assignments", AssignmentsRequest)
def assignments(ctx: HubContext, r: AssignmentsRequest) -> dict[str, list[str]]:
    return ctx.store.assignments(r.device_id)


@hub_command("quarantine", QuarantineRequest)
def quarantine(ctx: HubContext, r: QuarantineRequest) -> list[dict[str, Any]]:
    """Results a box sent for a section it is not assigned: stored, never in a report (newest first)."""
    return ctx.store.quarantined(r.device_id, r.limit)


@hub_command("release_session", ReleaseRequest)
def release_session(ctx: HubContext, r: ReleaseRequest) -> dict[str, Any]:
    """The operator has checked a quarantined session (a box lent to another room): it enters the reports."""
    if not ctx.store.release(r.device_id, r.session_id):
        raise NotFound(f"session_id: no quarantined session '{r.session_id}' of '{r.device_id}'")
    return {"device_id": r.device_id, "session_id": r.session_id, "released": True}
