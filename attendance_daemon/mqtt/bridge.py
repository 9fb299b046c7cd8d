"""The mosquitto bridge from a box's local broker to the central broker: rendered in one place, used by
`deploy/install.sh --central` and by the tests (which run mosquitto with exactly this text).

Out: only the leaves the hub needs, listed one by one (never `R/#`: that would also match the requests coming
in on `R/request/#` and send them back out, a loop). Progress and snapshots stay local (2 Hz and JPEGs over a
WAN link for fifty rooms is waste). In: the box's requests and the rosters of the hub.
A persistent session (`cleansession false`) with QoS 1 both ways: what the box publishes while the WAN is down
is queued by the local broker and sent when the link is back; the daemon only ever talks to its local broker.
Rosters come in only from the box's own roster topics (`<base>/@hub/roster/<device>/<section>`): the central
broker's ACL lets a box's user read nothing else, and the bridge asks for nothing else.

    python -m attendance_daemon.mqtt.bridge --device-id ID --central HOST:PORT [--username U --password P]
        [--cafile F | --insecure] [--certfile F --keyfile F] [--base attendance] [--no-try-private]
prints the `connection` block for /etc/mosquitto/conf.d/attendance-bridge.conf."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HUB = "@hub"  # the hub's namespace under the base topic: '@' cannot be in a device id ([a-z0-9_-])
OUT_LEAVES = ("availability", "info", "state", "results", "record", "events", "attendance", "response/#")
IN_LEAVES = ("request/#",)
BRIDGE_LEAF = "bridge"  # the bridge's own notification topic (1 connected, 0 not; a will on the central broker)
LOCAL_USER = "bridge"  # the bridge's user on the box's broker (ACL: deploy/mosquitto-attendance.acl)
_DEVICE = re.compile(r"[a-z0-9_-]+")
_HOSTPORT = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})")


def roster_topic(base: str, section: str) -> str:
    """Retained, one per section, every box's: the hub's roster before per-box topics; published by a hub only with
    `hub.legacy_roster_topics` (boxes not yet upgraded read it during the upgrade; docs/fleet.md)."""
    return f"{base}/{HUB}/roster/{section}"


def box_roster_topic(base: str, device_id: str, section: str) -> str:
    """Retained, one per box and section it teaches: the hub's roster for that box (see hub/roster.py)."""
    return f"{base}/{HUB}/roster/{device_id}/{section}"


@dataclass(frozen=True)
class BridgeSpec:
    device_id: str
    central: str  # HOST:PORT
    base: str = "attendance"
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = False
    try_private: bool = True
    restart_timeout: tuple[int, int] = (2, 30)  # backoff base and cap (s) between reconnects

    def check(self) -> None:
        """Refuses values that would break (or inject lines into) the rendered file."""
        if not _DEVICE.fullmatch(self.device_id):
            raise ValueError("device_id: must match [a-z0-9_-]+")
        m = _HOSTPORT.fullmatch(self.central)
        if not m or not 0 < int(m.group("port")) < 65536:
            raise ValueError("central: must be HOST:PORT")
        for name in ("base", "username", "password", "cafile", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None and (not str(value) or any(c in str(value) for c in "\n\r\x00 \t#+")):
                raise ValueError(f"{name}: must be non-empty, without spaces, '#', '+' or line breaks")
        if self.insecure and self.cafile is None:
            raise ValueError("insecure: only with cafile (it skips the host name check, not the encryption)")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")


def render(spec: BridgeSpec) -> str:
    spec.check()
    root = f"{spec.base}/{spec.device_id}"
    lines = [
        f"# Bridge of box '{spec.device_id}' to the central broker (rendered by attendance_daemon.mqtt.bridge).",
        f"connection attendance-{spec.device_id}",
        f"address {spec.central}",
        "bridge_protocol_version mqttv311",
        "cleansession false",
        f"remote_clientid attendance-bridge-{spec.device_id}",
        f"local_clientid attendance-bridge-local-{spec.device_id}",
        f"local_username {LOCAL_USER}",
        f"try_private {str(spec.try_private).lower()}",
        "keepalive_interval 30",
        f"restart_timeout {spec.restart_timeout[0]} {spec.restart_timeout[1]}",
        "notifications true",
        f"notification_topic {root}/{BRIDGE_LEAF}",
    ]
    if spec.username:
        lines.append(f"remote_username {spec.username}")
    if spec.password:
        lines.append(f"remote_password {spec.password}")
    if spec.cafile:
        lines.append(f"bridge_cafile {spec.cafile}")
        lines.append(f"bridge_insecure {str(spec.insecure).lower()}")
    if spec.certfile and spec.keyfile:
        lines += [f"bridge_certfile {spec.certfile}", f"bridge_keyfile {spec.keyfile}"]
    lines += [f"topic {leaf} out 1 {root}/ {root}/" for leaf in OUT_LEAVES]
    lines += [f"topic {leaf} in 1 {root}/ {root}/" for leaf in IN_LEAVES]
    lines.append(f"topic roster/{spec.device_id}/+ in 1 {spec.base}/{HUB}/ {spec.base}/{HUB}/")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attendance_daemon.mqtt.bridge", description=__doc__.split("\n")[0])
    p.add_argument("--device-id", required=True)
    p.add_argument("--central", required=True, help="HOST:PORT of the central broker")
    p.add_argument("--base", default="attendance")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--cafile", type=Path, help="CA of the central broker: TLS on")
    p.add_argument("--certfile", type=Path)
    p.add_argument("--keyfile", type=Path)
    p.add_argument("--insecure", action="store_true", help="TLS without the host name check")
    p.add_argument("--no-try-private", action="store_true", help="for central brokers that refuse bridge mode")
    a = p.parse_args(argv)
    spec = BridgeSpec(a.device_id, a.central, a.base, a.username, a.password, a.cafile, a.certfile, a.keyfile,
                      a.insecure, not a.no_try_private)
    try:
        sys.stdout.write(render(spec))
    except ValueError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
