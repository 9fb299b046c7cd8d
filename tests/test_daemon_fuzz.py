"""Thousands of malformed or random requests: each gets exactly one well-formed answer, the daemon lives on."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attendance_daemon.contract.api import Response
from attendance_daemon.daemon.handlers import COMMANDS
from tests.mqtt_fixtures import Broker, is_discovery_topic

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
field_names = st.sampled_from(["section", "path", "session_id", "camera", "export", "images", "student_id",
                               "name", "format", "limit", "since", "duration_s", "session_name", "transaction"])
requests = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(field_names, json_values, max_size=5).map(lambda d: json.dumps(d).encode()),
)
commands = st.sampled_from([*sorted(set(COMMANDS) - {"start_webcam"}), "nope", "status/extra", "ümlaut"])


def test_fuzzed_requests_each_get_exactly_one_answer(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    sent: list[tuple[str, bytes]] = []

    @settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(command=commands, payload=requests)
    def collect(command: str, payload: bytes) -> None:
        sent.append((command, payload))

    collect()
    with broker.client(d.device) as c:
        answered = threading.Semaphore(0)
        orig = c.client.on_message

        def counting(client: Any, userdata: Any, msg: Any) -> None:
            assert orig is not None
            orig(client, userdata, msg)
            if "/response/" in msg.topic:
                answered.release()

        c.client.on_message = counting
        expected = 0
        for i, (command, payload) in enumerate(sent):
            c.client.publish(c.topics.request(command), payload, qos=1)
            if "/" not in command:  # 'status/extra' is not under request/+, so it is not a request at all
                expected += 1
            if i % 200 == 199:
                time.sleep(0.05)
        got = 0
        deadline = time.monotonic() + 120
        while got < expected and time.monotonic() < deadline:
            if answered.acquire(timeout=1):
                got += 1
        time.sleep(0.5)
        responses = [m for m in c.messages if m[0].startswith("response/")]
        assert len(responses) == expected, f"{len(responses)} responses to {expected} requests"
        codes: dict[int, int] = {}
        for _, payload, _ in responses:
            r = Response.model_validate_json(payload)
            assert (r.status == "ok") == (r.code == 200)
            assert r.code in (200, 400, 403, 404, 409), r
            codes[r.code] = codes.get(r.code, 0) + 1
        assert codes.get(400, 0) > len(sent) / 4  # most garbage is refused as bad input
        if c.json("state")["busy"]:  # a fuzzed start may have hit a valid request: end it
            c.request("stop")
        assert c.request("status")["data"]["mode"] == "idle"
    assert d.proc is not None and d.proc.poll() is None
    assert "Traceback" not in d.log_text()


# ---- random MQTT v5 properties: response topics, correlation data, user properties -------------------------

_text = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Zs")), max_size=30)


def _reply_topics(root: str) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from([
        "attendance/+/x", "#", "+", f"{root}/reply/#", f"{root}/reply/+/x", f"{root}/availability",
        f"{root}/state", f"{root}/request/status", f"{root}/response/status", f"{root}/events", "elsewhere/x",
        f"{root}/reply/" + "y" * 300, f"{root}/", "/", f"{root}/reply/ok",
    ]) | _text.map(lambda t: f"{root}/reply/{t}") | _text


correlations = st.none() | st.binary(max_size=64) | st.sampled_from([b"c" * 1025, b"d" * 65_535])
user_properties = st.lists(st.tuples(_text, _text | st.just("v" * 10_000)), max_size=3)


def test_fuzzed_v5_properties_each_get_exactly_one_answer(broker: Broker, daemon_factory: Any) -> None:
    from tests.test_hardening_mqtt import Sniffer

    d = daemon_factory().start()
    root = f"attendance/{d.device}"
    sent: list[tuple[str, bytes, str | None, bytes | None, list[tuple[str, str]]]] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(command=commands, payload=requests, reply=_reply_topics(root), corr=correlations, user=user_properties)
    def collect(command: str, payload: bytes, reply: str | None, corr: bytes | None,
                user: list[tuple[str, str]]) -> None:
        sent.append((command, payload, reply, corr, user))

    collect()
    s = Sniffer(broker)
    try:
        expected = 0
        for command, payload, reply, corr, user in sent:
            s.send(f"{root}/request/{command}", payload, reply, corr, user)
            expected += "/" not in command
        s.wait(lambda: len([g for g in s.got if g[0].startswith(f"{root}/response/")]) >= expected, timeout=120)
        time.sleep(1.0)
        responses = [g for g in s.got if g[0].startswith(f"{root}/response/")]
        assert len(responses) == expected, f"{len(responses)} responses to {expected} requests"
        for _, payload, _, _ in responses:
            Response.model_validate_json(payload)
        # answers elsewhere only on allowed reply topics, one per request at most; nothing outside R/
        assert not [g[0] for g in s.got if not g[0].startswith(f"{root}/") and not is_discovery_topic(g[0])]
        replies = [g for g in s.got if g[0].startswith(f"{root}/reply/")]
        allowed = [r for c, _, r, corr, _ in sent
                   if "/" not in c and r is not None and r.startswith(f"{root}/reply/") and not set(r) & set("+#")
                   and len(r) <= 256 and (corr is None or len(corr) <= 1024)]
        assert len(replies) == len(allowed)
        assert all(g[3] is None or len(g[3]) <= 1024 for g in replies)
        assert {p for t, p, _, _ in s.got if t == f"{root}/availability"} == {b"online"}
        assert len([g for g in s.got if g[0].startswith(f"{root}/request/")]) == len(sent)  # no loops
        with broker.client(d.device) as c:
            if c.wait_for("state", lambda st_: True)["busy"]:
                c.request("stop")
            assert c.request("status")["data"]["mode"] == "idle"  # still answering
    finally:
        s.close()
    assert d.proc is not None and d.proc.poll() is None
    assert "Traceback" not in d.log_text()
