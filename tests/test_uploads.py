"""Uploads over MQTT into the media library, against the real broker and the daemon as a real process: shuffled
chunks with re-sends, resume after `kill -9` and across a broker restart, every refusal (and nothing left
behind), two uploads at once, an upload during a session, a session started by `media`, deleting media."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.mqtt.client import ApiClient, ApiError
from attendance_daemon.mqtt.uploader import UPLOAD_LEAVES, Span, UploadFailed, chunk_spans, file_sha256, upload
from tests.mqtt_fixtures import Broker
from tests.test_ctl_and_auth import ctl

MB = 1024 * 1024


def padded_video(src: Path, dest: Path, total_bytes: int, fill: int = 0) -> Path:
    """A real MP4 made `total_bytes` long by a top-level `free` box after it (ISO BMFF lets readers skip it):
    a large file the decoder really opens, made in a moment. `fill` varies the padding, so the hash differs."""
    shutil.copy(src, dest)
    pad = total_bytes - src.stat().st_size
    assert pad >= 8
    with open(dest, "ab") as f:
        f.write(struct.pack(">I", pad) + b"free")
        block = bytes([fill]) * MB
        left = pad - 8
        while left:
            f.write(block[: min(left, MB)])
            left -= min(left, MB)
    return dest


def uploader(broker: Broker, device: str) -> ApiClient:
    return ApiClient("127.0.0.1", broker.port, device, leaves=UPLOAD_LEAVES)


def shuffled_with_resends(seed: int) -> Callable[[list[Span]], list[Span]]:
    def order(spans: list[Span]) -> list[Span]:
        rng = random.Random(seed)
        out = spans + rng.sample(spans, max(1, len(spans) // 10))  # a tenth sent twice
        rng.shuffle(out)
        return out

    return order


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _status(c: ApiClient, upload_id: str) -> dict[str, Any]:
    data: dict[str, Any] = c.request("upload_status", {"upload_id": upload_id})["data"]
    return data


def _error(c: ApiClient, command: str, payload: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ApiError) as info:
        c.request(command, payload)
    return info.value.response


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, sample: dict[str, Any]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("uploads")
    src = Path(sample["video"])
    return {"big": padded_video(src, root / "lecture.mp4", 200 * MB, fill=1),
            "mid": padded_video(src, root / "seminar.mp4", 48 * MB, fill=2),
            "small": padded_video(src, root / "small.mp4", 6 * MB, fill=3),
            "other": padded_video(src, root / "other.mp4", 6 * MB, fill=4)}


def test_shuffled_upload_with_resends_becomes_media_and_starts_a_session(
        daemon_factory: Any, broker: Broker, videos: dict[str, Path], daemon_media: Path) -> None:
    d = daemon_factory().start()
    big = videos["big"]
    with uploader(broker, d.device) as c, broker.client(d.device) as watcher:
        media = upload(c, big, name="upload-big.mp4", order=shuffled_with_resends(1))
        assert media["name"] == "upload-big.mp4" and media["bytes"] == big.stat().st_size
        assert media["sha256"] == file_sha256(big)
        assert media["frames"] > 100 and media["fps"] > 0 and media["width"] == 1280 and media["duration_s"] > 5
        on_box = daemon_media / "upload-big.mp4"
        assert hashlib.sha256(on_box.read_bytes()).hexdigest() == media["sha256"]  # byte-identical on the box
        assert not list((d.data / "uploads").glob("*.part"))
        # the library, and a second begin of the same bytes answered at once
        assert watcher.request("media")["data"] == [media]
        again = c.request("upload_begin", {"name": "again.mp4", "bytes": media["bytes"],
                                           "sha256": media["sha256"]})["data"]
        assert again["state"] == "complete" and again["media"] == media and again["missing"] == []
        # statuses were published as chunks landed (not retained), and say the upload completed
        statuses = [json.loads(p) for leaf, p, retained in watcher.messages
                    if leaf.startswith("upload/") and leaf.endswith("/status") and not retained]
        assert statuses and statuses[-1]["state"] == "complete"
        assert any(0 < s["received"] < s["bytes"] for s in statuses)
        # start by media; an upload while it runs; deleting the media in use is refused
        state = watcher.request("start_mp4", {"media": "upload-big.mp4", "section": "demo", "client": "tab 1"})["data"]
        assert state["mode"] == "mp4" and state["session"]["source"] == "upload-big.mp4"
        assert state["session"]["started_by"] == "tab 1"  # who started it, for every dashboard to see
        watcher.request("pause", {"session_id": state["session"]["id"]})  # held: the checks below cannot race its end
        progress = watcher.wait_for("progress", lambda p: p["session_id"] == state["session"]["id"])
        assert progress["started_by"] == "tab 1"
        refused = _error(watcher, "delete_media", {"name": "upload-big.mp4"})
        assert refused["code"] == 409 and "stop it first" in refused["error"]
        watcher.request("resume", {"session_id": state["session"]["id"]})
        small = upload(c, videos["small"], name="during-session.mp4")
        assert small["bytes"] == videos["small"].stat().st_size
        results = watcher.wait_for("results", lambda r: r["session_id"] == state["session"]["id"], timeout=120)
        watcher.wait_for("state", lambda s: s["mode"] == "idle", timeout=30)  # the video is free once it ended
        assert results["status"] == "completed" and results["present_count"] >= 5
        both = {m["name"] for m in watcher.request("media")["data"]}
        assert both == {"upload-big.mp4", "during-session.mp4"}
        for name in both:
            assert watcher.request("delete_media", {"name": name})["data"] == {"name": name, "deleted": True}
            assert not (daemon_media / name).exists()
        assert watcher.request("media")["data"] == []
        missing = _error(watcher, "start_mp4", {"media": "upload-big.mp4", "section": "demo"})
        assert missing["code"] == 404 and "name" in missing["error"]
        both_given = _error(watcher, "start_mp4", {"media": "a.mp4", "path": "classroom.mp4", "section": "demo"})
        assert both_given["code"] == 400 and "path" in both_given["error"]


def test_resume_after_kill_and_across_a_broker_restart(
        daemon_factory: Any, broker: Broker, videos: dict[str, Path], daemon_media: Path) -> None:
    d = daemon_factory().start()
    mid = videos["mid"]
    size, sha = mid.stat().st_size, file_sha256(mid)
    with uploader(broker, d.device) as c:
        begun = c.request("upload_begin", {"name": mid.name, "bytes": size, "sha256": sha})["data"]
        upload_id = begun["upload_id"]
        half = chunk_spans(begun["missing"], begun["chunk_bytes"])[::2]  # every second chunk
        with open(mid, "rb") as f:
            for a, b in half:
                f.seek(a)
                c.client.publish(f"{c.topics.root}/upload/{upload_id}/{a}", f.read(b - a), qos=1).wait_for_publish(10)
        half_bytes = sum(b - a for a, b in half)
        _wait(lambda: _status(c, upload_id)["received"] == half_bytes, 60)
        d.signal(signal.SIGKILL)
        d.wait(30)
        d.start()
        resumed = c.request("upload_begin", {"name": mid.name, "bytes": size, "sha256": sha})["data"]
        assert resumed["upload_id"] == upload_id and resumed["state"] == "receiving"
        assert resumed["received"] == half_bytes  # what was reported durable survived kill -9
        assert len(resumed["missing"]) == len(half)  # the gaps between the chunks sent
        assert resumed["missing"][0] == [half[0][1], half[1][0]]

        # the rest, with the broker restarted while it is under way
        restarted = threading.Event()

        def restart_broker_midway(sent: int, total: int) -> None:
            if not restarted.is_set() and sent > total * 3 // 4:
                restarted.set()
                threading.Thread(target=_restart, args=(broker,)).start()

        media = upload(c, mid, on_progress=restart_broker_midway, timeout=300)
        assert restarted.is_set()
        assert media["sha256"] == sha and media["name"] == mid.name
        assert hashlib.sha256((daemon_media / mid.name).read_bytes()).hexdigest() == sha
        c.request("delete_media", {"name": mid.name})
    assert not list((d.data / "uploads").glob("*.part"))


def _restart(broker: Broker) -> None:
    broker.stop()
    time.sleep(1.0)
    broker.start()


def test_refusals_leave_nothing_behind_and_the_box_keeps_answering(
        daemon_factory: Any, broker: Broker, videos: dict[str, Path], tmp_path: Path) -> None:
    d = daemon_factory(extra=f"[media]\nmax_upload_bytes = {100 * MB}\nmax_uploads = 1\nchunk_bytes = 65536\n").start()
    small = videos["small"]
    size, sha = small.stat().st_size, file_sha256(small)
    with uploader(broker, d.device) as c:
        for bad, field in ((("../x.mp4", size, sha), "name"), (("lecture.exe", size, sha), "name"),
                           (("a/b.mp4", size, sha), "name"), (("ok.mp4", 0, sha), "bytes"),
                           (("ok.mp4", size, "abc"), "sha256")):
            err = _error(c, "upload_begin", {"name": bad[0], "bytes": bad[1], "sha256": bad[2]})
            assert err["code"] == 400 and field in err["error"], err
        assert _error(c, "upload_begin", {"name": "big.mp4", "bytes": 101 * MB, "sha256": sha})["code"] == 413
        assert _error(c, "upload_status", {"upload_id": "0123abcd"})["code"] == 404
        # one upload at a time here: a second is 429 until the first ends
        first = c.request("upload_begin", {"name": "first.mp4", "bytes": size, "sha256": sha})["data"]
        assert first["chunk_bytes"] == 65536 and first["received"] == 0
        assert first["missing"] == [[0, size]]
        other = videos["other"]
        busy = _error(c, "upload_begin", {"name": "second.mp4", "bytes": other.stat().st_size,
                                          "sha256": file_sha256(other)})
        assert busy["code"] == 429 and "max_uploads" in busy["error"]
        # chunks past the end, longer than chunk_bytes, or at a bad offset: refused in the status, by offset
        root = f"{c.topics.root}/upload/{first['upload_id']}"
        c.client.publish(f"{root}/{size - 10}", b"x" * 20, qos=1)
        c.client.publish(f"{root}/0", b"x" * 65537, qos=1)
        c.client.publish(f"{root}/-5", b"x", qos=1)
        _wait(lambda: len(_status(c, first["upload_id"]).get("refused", [])) == 3)
        refused = {r["offset"]: r["error"] for r in _status(c, first["upload_id"])["refused"]}
        assert "past" in refused[str(size - 10)] and "chunk_bytes" in refused["0"] and "offset" in refused["-5"]
        assert _status(c, first["upload_id"])["received"] == 0
        # wrong bytes (the other file's, announced with this file's hash): failed, the partial file removed
        with open(other, "rb") as f:
            data = f.read(size)
        for off in range(0, size, 65536):
            c.client.publish(f"{root}/{off}", data[off:off + 65536], qos=1)
        _wait(lambda: _status(c, first["upload_id"])["state"] == "failed", 60)
        failed = _status(c, first["upload_id"])
        assert "sha256" in failed["error"] and failed["missing"] == []
        assert not (d.data / "uploads" / f"{first['upload_id']}.part").exists()
        # the right hash of a file that is no video: failed as no video
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(bytes(range(256)) * 4096)
        with pytest.raises(UploadFailed) as no_video:
            upload(c, junk)
        assert "decoder" in no_video.value.status["error"]
        assert not list((d.data / "uploads").glob("*.part"))
        assert c.request("media")["data"] == []
    # free space: a reserve larger than the disk refuses every upload with 507, writing nothing
    d.stop()
    d2 = daemon_factory(extra=f"[media]\ndisk_reserve_bytes = {2**60}\n").start()
    with uploader(broker, d2.device) as c:
        full = _error(c, "upload_begin", {"name": "ok.mp4", "bytes": size, "sha256": sha})
        assert full["code"] == 507 and "free" in full["error"]
        assert not list((d2.data / "uploads").iterdir())
        assert c.request("status")["data"]["mode"] == "idle"


def test_two_uploads_at_once(daemon_factory: Any, broker: Broker, videos: dict[str, Path],
                             daemon_media: Path) -> None:
    d = daemon_factory().start()
    results: dict[str, dict[str, Any]] = {}

    def run(key: str, seed: int) -> None:
        with uploader(broker, d.device) as c:
            results[key] = upload(c, videos[key], name=f"two-{key}.mp4", order=shuffled_with_resends(seed))

    threads = [threading.Thread(target=run, args=(k, i)) for i, k in enumerate(("small", "other"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert set(results) == {"small", "other"}
    for key, media in results.items():
        assert media["sha256"] == file_sha256(videos[key])
        assert hashlib.sha256((daemon_media / media["name"]).read_bytes()).hexdigest() == media["sha256"]
    with uploader(broker, d.device) as c:
        for media in results.values():
            c.request("delete_media", {"name": media["name"]})


def test_ctl_uploads_starts_with_export_and_downloads_everything_byte_identical(
        daemon_factory: Any, broker: Broker, videos: dict[str, Path], tmp_path: Path) -> None:
    d = daemon_factory().start()
    src = videos["small"]
    proc = ctl(broker, d.device, "upload", str(src), "--name", "ctl-upload.mp4", "--start", "--section", "demo",
               "--export")
    assert proc.returncode == 0, proc.stderr
    media_json, state_json = proc.stdout.split("\n}\n", 1)
    media = json.loads(media_json + "}")
    state = json.loads(state_json)
    assert media["sha256"] == file_sha256(src) and state["session"]["source"] == "ctl-upload.mp4"
    assert state["session"]["started_by"] == "attendancectl"
    assert f"upload {src.name}" in proc.stderr  # the progress bar (its label, when not on a terminal)
    sid = state["session"]["id"]
    with broker.client(d.device) as c:
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        assert results["status"] == "completed" and results["export_path"]
        faces = c.request("unknown_faces", {"session_id": sid})["data"]
    export_on_box = Path(results["export_path"])
    # the export, fetched in pieces: byte-identical; a second run after a partial (and a wrong) start resumes
    out = tmp_path / "out.mp4"
    proc = ctl(broker, d.device, "download", "export", sid, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == export_on_box.read_bytes() and export_on_box.stat().st_size > 100_000
    assert "sha256" in proc.stdout and "verified" in proc.stdout
    resumed = tmp_path / "resumed.mp4"
    Path(f"{resumed}.part").write_bytes(export_on_box.read_bytes()[: export_on_box.stat().st_size // 2 + 17])
    assert ctl(broker, d.device, "download", "export", sid, "-o", str(resumed)).returncode == 0
    assert resumed.read_bytes() == export_on_box.read_bytes()
    spoiled = tmp_path / "spoiled.mp4"
    Path(f"{spoiled}.part").write_bytes(b"\0" * 5000)  # bytes of something else: detected, fetched again
    assert ctl(broker, d.device, "download", "export", sid, "-o", str(spoiled)).returncode == 0
    assert spoiled.read_bytes() == export_on_box.read_bytes()
    # the report as the record is now, an unknown face's crop, the media itself
    report = tmp_path / "report.csv"
    assert ctl(broker, d.device, "download", "report", sid, "-o", str(report)).returncode == 0
    assert report.read_bytes().startswith(b"\xef\xbb\xbf") and b"demo" in report.read_bytes()
    if faces:
        crop = tmp_path / "face.jpg"
        assert ctl(broker, d.device, "download", "unknown", str(faces[0]["face_id"]), "-o", str(crop)).returncode == 0
        assert crop.read_bytes()[:2] == b"\xff\xd8"
    back = tmp_path / "back.mp4"  # 6 MB: six pieces
    assert ctl(broker, d.device, "download", "media", "ctl-upload.mp4", "-o", str(back)).returncode == 0
    assert back.read_bytes() == src.read_bytes() and not Path(f"{back}.part").exists()
    # refusals are one clear line each
    proc = ctl(broker, d.device, "download", "export", "no-such-session", "-o", str(tmp_path / "x.mp4"))
    assert proc.returncode == 1 and "404" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(ctl(broker, d.device, "delete-media", "ctl-upload.mp4").stdout)["deleted"] is True


def test_plain_mosquitto_clients_upload_as_the_docs_show(daemon_factory: Any, broker: Broker,
                                                         daemon_media: Path, tmp_path: Path) -> None:
    """docs/operations.md's mosquitto_rr / mosquitto_pub / split recipe, run as written (broker and device
    swapped in), against the daemon."""
    d = daemon_factory().start()
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    block = doc.split("With plain mosquitto clients", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if "request/start_mp4" not in line and "request/download" not in
             line and "base64 -d" not in line]
    script = "\n".join(lines).replace('B="-h broker -u dashboard -P secret"', f'B="-h 127.0.0.1 -p {broker.port}"')
    script = script.replace("R=attendance/room-101", f"R=attendance/{d.device}")
    script = script.replace("id=...", "id=$(python3 -c 'import json,sys; print(json.load(open(\"begin.json\"))"
                            "[\"data\"][\"upload_id\"])')")
    begin = '-m "{\\"name\\":\\"lecture.mp4\\",\\"bytes\\":$size,\\"sha256\\":\\"$sha\\"}"'
    script = script.replace(begin, f"{begin} > begin.json")
    assert "begin.json" in script and "$(python3" in script, script
    shutil.copy(daemon_media / "classroom.mp4", tmp_path / "lecture.mp4")
    run = subprocess.run(["bash", "-euc", script.replace("\\\n", " ")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["data"]["state"] == "complete", answer
    assert answer["data"]["media"]["sha256"] == file_sha256(tmp_path / "lecture.mp4")
    with uploader(broker, d.device) as c:
        c.request("delete_media", {"name": answer["data"]["media"]["name"]})


def test_upload_state_survives_a_restart_and_abandoned_uploads_expire(tmp_path: Path) -> None:
    """The upload manager alone, on real files and a real SQLite store: what flush reported durable is what a new
    process recovers; files without a state are removed; an upload untouched for upload_expiry_h goes."""
    from attendance_daemon.config import MediaConfig
    from attendance_daemon.media.uploads import Uploads
    from attendance_daemon.store import Store

    store = Store(tmp_path / "db.sqlite3", allow_init=True)
    folder, media = tmp_path / "uploads", tmp_path / "media"
    folder.mkdir()
    media.mkdir()
    seen: list[dict[str, Any]] = []

    def make() -> Uploads:
        return Uploads(MediaConfig(upload_expiry_h=1), folder, media, store, seen.append, lambda _id: None)

    first = make()
    begun = first.begin("a.mp4", 10, "ab" * 32)
    first.write(begun["upload_id"], "0", b"01234")
    first.flush()
    first.write(begun["upload_id"], "5", b"567")  # written, never flushed: not durable, not reported
    assert seen[-1]["received"] == 5 and seen[-1]["missing"] == [[5, 10]]
    first.close()
    (folder / "stray.part").write_bytes(b"x")  # a partial file whose begin never became durable
    second = make()
    second.recover()
    assert second.status(begun["upload_id"])["missing"] == [[5, 10]]
    assert not (folder / "stray.part").exists()
    assert second.expire(now=time.time() + 1800) == 0  # half an hour: kept
    assert second.expire(now=time.time() + 3700) == 1  # over an hour: gone, with its files
    assert list(folder.iterdir()) == []
    with pytest.raises(Exception, match="no upload"):
        second.status(begun["upload_id"])
    store.close()


def test_the_media_entry_model_is_the_stored_row() -> None:
    """`media` answers the store's rows as they are: the documented model must have exactly the row's fields."""
    from dataclasses import fields

    from attendance_daemon.contract.media_api import MediaEntry
    from attendance_daemon.store import MediaRow

    assert list(MediaEntry.model_fields) == [f.name for f in fields(MediaRow)]
