"""The teacher's console (examples/node-red/flows.json, tab "Attendance console") clicked through in a real headless
Chromium (Debian's chromium and chromium-driver, selenium) against a real Node-RED 4 with Dashboard 2 (npm, pinned),
a real mosquitto with passwords and the shipped ACL, and the daemon as a real process whose cameras are rendered
videos read as live cameras: an upload that survives a dropped connection, a cancel and a closed tab; an uploaded
video's session with its export played in the page and downloaded byte for byte, CSV and PDF reports; a camera
session paused, resumed and stopped while a second browser sees the busy overlay; a session started by a second
Node-RED; two simultaneous starts (one session, one 409); an unknown face assigned and another dismissed; students
enrolled from photo files and from the box's camera, one removed; the history; a record corrected, undone,
finalised and reopened. The world (tests/console_world.py: one broker, daemon and two Node-REDs) is shared by the
module, whose tests run in order and build on each other; each page is saved as a 1280x800 screenshot."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2

from tests import console_world
from tests.console_browser import HEIGHT, WIDTH, Browser
from tests.console_world import SHOTS, World, overlay, value_of
from tests.test_enroll_capture import FACES
from tests.test_node_red import REPO

# the shared world's fixtures (tests/console_world.py), module scoped here
node_red_exe, world, teacher, colleague = (console_world.node_red_exe, console_world.world, console_world.teacher,
                                           console_world.colleague)
FLOW = json.loads((REPO / "examples" / "node-red" / "flows.json").read_text())


def test_console_is_built_from_its_sources() -> None:
    """flows.json holds exactly what build_flows.py makes of examples/node-red/console/, and the pages the README
    lists, each with its Vue component, the overlay on every page and the endpoints the pages call."""
    import runpy

    build = runpy.run_path(str(REPO / "examples" / "node-red" / "build_flows.py"))
    assert build["render"](build["build"](FLOW)) == (REPO / "examples" / "node-red" / "flows.json").read_text(), \
        "run: python examples/node-red/build_flows.py"
    pages = {n["path"]: n["name"] for n in FLOW if n["type"] == "ui-page"}
    assert pages == {"/start": "Start", "/upload": "Upload", "/session": "Session", "/results": "Results",
                     "/unknown": "Unknown faces", "/students": "Students", "/history": "History",
                     "/attendance": "Overview"}
    templates = [n for n in FLOW if n["type"] == "ui-template"]
    assert {n["templateScope"] for n in templates if n["id"].startswith("con_")} == {"local", "widget:ui",
                                                                                     "site:style"}
    assert all("// @include" not in n["format"] for n in templates)
    urls = {(n["method"], n["url"]) for n in FLOW if n["type"] == "http in" and n["z"] == "con_tab"}
    api = "/attendance-console/api"
    assert urls == {("get", "/attendance-console/console.js"), ("get", f"{api}/live"),
                    ("get", f"{api}/:device/snapshot.jpg"), ("post", f"{api}/:device/:command"),
                    ("put", f"{api}/:device/upload/:upload_id/:offset"), ("get", f"{api}/:device/file/:kind")}


# ---- the pages, in the order a teacher meets them ------------------------------------------------------------


def test_upload_survives_a_dropped_connection_a_cancel_and_a_closed_tab(world: World, teacher: Browser) -> None:
    b = teacher
    b.open("upload", "Drop an MP4 recording here")
    # checked in the browser before anything is sent: not an MP4, more than 2 GB (a sparse file: nothing is read)
    text = world.root / "notes.txt"
    text.write_text("not a video")
    b.el("#att-upload-file").send_keys(str(text))
    b.wait_text("notes.txt is not an MP4 video.")
    huge = world.root / "huge.mp4"
    with huge.open("wb") as f:
        f.truncate(2 * 1024**3 + 1)
    b.el("#att-upload-file").send_keys(str(huge))
    b.wait_text("at most 2 GB (2147483648 bytes) can be uploaded")
    assert world.box("media") == []

    b.network(upload_bytes_s=3_000_000)  # slow enough to interrupt
    b.el("#att-upload-file").send_keys(str(world.lecture))
    b.wait_text("uploading", 60)
    percent = lambda: float(b.el("#att-upload-numbers").text.split(" %")[0])  # noqa: E731
    b.until("10 % uploaded", lambda: percent() >= 10, 60)
    assert "/s" in b.el("#att-upload-numbers").text and "left" in b.el("#att-upload-numbers").text
    world.shot(b, "upload")
    b.network(offline=True)  # the connection drops: the page says so and goes on by itself when it is back
    b.wait_text("connection lost", 20)
    time.sleep(2)
    b.network(upload_bytes_s=3_000_000)
    b.until("the upload going on", lambda: b.el("#att-upload-phase").text == "uploading" and percent() >= 30, 60)
    b.press("Cancel")
    b.wait_text("cancelled: drop the same file again")
    cancelled_at = percent()
    assert cancelled_at < 100
    # the tab is closed; a new one lists the unfinished upload and resumes it from what the box holds
    first = b.driver.current_window_handle
    b.driver.switch_to.new_window("tab")
    b.driver.switch_to.window(first)
    b.driver.close()
    b.driver.switch_to.window(b.driver.window_handles[0])
    b.network()
    b.open("upload", "Unfinished uploads")
    assert "lecture.mp4" in b.el(".att-unfinished").text
    b.el("#att-upload-file").send_keys(str(world.lecture))
    b.until("a resumed upload", lambda: b.js(
        "const j = AttendanceConsole.uploads.job; return j && j.resumed_from"), 30)
    resumed = b.js("return AttendanceConsole.uploads.job.resumed_from")
    assert resumed >= 0.2 * world.lecture.stat().st_size, resumed  # not from the start
    b.wait_text("done: the video is in the box's library", 90)
    (entry,) = world.box("media")
    assert entry["name"] == "lecture.mp4" and entry["bytes"] == world.lecture.stat().st_size
    assert entry["sha256"] == hashlib.sha256(world.lecture.read_bytes()).hexdigest()
    assert "Unfinished uploads" not in b.text()


def test_a_video_session_with_its_export_played_and_downloaded(world: World, teacher: Browser) -> None:
    b = teacher
    b.press("Start a session with it")
    b.wait_text("Start a session")
    b.until("the video chosen", lambda: value_of(b, "#att-video") == "lecture.mp4")
    b.fill("#att-name", "lecture-monday")
    b.el("#att-export").click()
    b.fill("#att-who", "Ms Lovelace")
    b.js("document.activeElement.blur()")
    world.shot(b, "start")
    b.press("Start")
    b.wait_text("Frame ", 30)  # the Session page: "Frame 12 / 180 · 6.7 % · 0:15 left"
    b.until("a frame count and time left", lambda: " / 180" in b.el("#att-frames").text
            and "left" in b.el("#att-frames").text)
    world.shot(b, "session")
    # the page moves to the results by itself
    b.until("the results", lambda: "lecture-monday" in b.text()
            and b.driver.find_elements("css selector", "#att-counts"), 120)
    results = world.box("sessions", {"limit": 1})[0]
    assert results["name"] == "lecture-monday" and results["status"] == "completed"
    world.found["lecture"] = sid = results["session_id"]
    full = world.box("session", {"session_id": sid})
    counts = b.el("#att-counts").text
    assert f"{full['present_count']}\npresent" in counts and f"{full['total']}\non the roster" in counts
    present = b.el("#att-present").text
    assert sorted(s["student_id"] for s in full["present"]) == sorted(world.truth["present"])
    for s in full["present"]:
        assert s["name"] in present and s["student_id"] in present
    assert all(s["name"] in b.el("#att-absent").text for s in full["absent"])
    # the export plays in the page: the <video> gets data through the flow's HTTP Range endpoint
    assert full["export_codec"] == "h264"
    b.until("the export playable",
            lambda: b.js("return document.querySelector('#att-export-video').readyState") >= 2, 60)
    b.js("const v = document.querySelector('#att-export-video'); v.muted = true; v.currentTime = 6; v.play()")
    b.until("the export played past 6 s", lambda: b.js(
        "return document.querySelector('#att-export-video').currentTime") > 6.5, 30)
    world.shot(b, "results")
    # and downloads byte for byte, as do the reports
    b.el("#att-export-download").click()
    export = Path(full["export_path"])
    got = b.downloaded(export.name)
    assert got.read_bytes() == export.read_bytes()
    b.el("#att-csv").click()
    csv = b.downloaded("lecture-monday.csv").read_bytes()
    assert csv.startswith(b"\xef\xbb\xbf") and all(s["student_id"].encode() in csv for s in full["present"])
    b.el("#att-pdf").click()
    assert b.downloaded("lecture-monday.pdf").read_bytes().startswith(b"%PDF")


def test_a_camera_session_with_pause_resume_stop_and_the_overlay(world: World, teacher: Browser,
                                                                 colleague: Browser) -> None:
    a, other = teacher, colleague
    a.open("start", "Start a session")
    a.el("#att-src-camera").click()
    a.select("#att-camera", "room")
    a.fill("#att-name", "camera-tuesday")
    a.press("Start")
    a.wait_text("Elapsed", 30)
    a.until("someone present in the live roster", lambda: "✔ present" in a.el("#att-roster").text, 60)
    state = world.box("status")
    assert state["session"]["started_by"].startswith("Ms Lovelace #") and state["mode"] == "webcam"
    # the other browser (another profile, so another tab id) is locked out, and told by whom and what
    other.open("start")
    other.until("the busy overlay", lambda: overlay(other), 20)
    text = overlay(other) or ""
    assert "camera-tuesday" in text and "Ms Lovelace (another browser tab)" in text and "since" in text
    world.shot(other, "overlay")
    for page in ("results", "students"):  # on every console page
        other.open(page)
        other.until(f"the overlay on {page}", lambda: overlay(other), 20)
    assert overlay(a) is None  # the tab that started it keeps its controls
    a.press("Pause")
    a.button("Resume")
    a.wait_text("Paused")
    assert world.box("status")["paused"] is True
    world.shot(a, "session-camera")
    a.press("Resume")
    a.button("Pause")
    assert world.box("status")["paused"] is False
    a.press("Stop")
    a.until("the camera session's results", lambda: "camera-tuesday" in a.text()
            and a.driver.find_elements("css selector", "#att-counts"), 60)
    other.until("the overlay lifted", lambda: overlay(other) is None, 20)
    world.found["camera"] = world.box("sessions", {"limit": 1})[0]["session_id"]


def test_a_session_started_by_a_second_node_red_locks_every_tab(world: World, teacher: Browser,
                                                                colleague: Browser) -> None:
    teacher.open("session")
    colleague.open("history")
    answer = world.office.command("con-room", "start_webcam", {"section": "demo", "camera": "room", "duration_s": 5,
                                                               "client": "office Node-RED",
                                                               "session_name": "office-run"})["response"]
    assert answer["code"] == 200, answer
    def locked(b: Browser) -> bool:
        return "office Node-RED" in (overlay(b) or "")

    for b in (teacher, colleague):
        b.until("the overlay", lambda: locked(b), 20)  # noqa: B023 (called at once)
        assert "office-run" in (overlay(b) or "")
    for b in (teacher, colleague):
        b.until("the overlay lifted when the box is idle", lambda: overlay(b) is None, 40)  # noqa: B023


def test_two_simultaneous_starts_make_one_session_and_one_409(world: World, teacher: Browser,
                                                              colleague: Browser) -> None:
    before = len(world.box("sessions"))
    for b, who in ((teacher, "Ms Lovelace"), (colleague, "Mr Turing")):
        b.open("start", "Start a session")
        b.el("#att-src-video").click()
        b.select("#att-video", "lecture.mp4")
        b.fill("#att-who", who)
        b.js("document.activeElement.blur()")  # the name field's change is taken
        b.button("Start")
    go = threading.Barrier(2)

    def press(b: Browser) -> None:
        button = b.button("Start")
        go.wait()
        button.click()

    threads = [threading.Thread(target=press, args=(b,)) for b in (teacher, colleague)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    def seen(b: Browser) -> str | None:
        """What the tab shows after its press: the 409 refusal on Start, or the Session page's frames."""
        if b.driver.find_elements("css selector", "#att-start-error") and \
                "Someone else started first" in b.el("#att-start-error").text:
            return "refused"
        return "started" if b.driver.find_elements("css selector", "#att-frames") else None

    outcome = {name: b.until("an outcome", lambda: seen(b), 30)  # noqa: B023 (called at once)
               for name, b in (("teacher", teacher), ("colleague", colleague))}
    assert sorted(outcome.values()) == ["refused", "started"], outcome
    winner, loser = (teacher, colleague) if outcome["teacher"] == "started" else (colleague, teacher)
    refusal = loser.el("#att-start-error").text
    started_by = world.box("status")["session"]["started_by"]
    assert started_by.split(" #")[0] in refusal and "lecture.mp4" in refusal
    loser.until("the overlay for the loser", lambda: overlay(loser), 20)
    sessions = world.box("sessions")
    assert len(sessions) == before + 1 and sessions[0]["status"] in ("running", "paused")
    # it runs to its end (its unknown visitor is dismissed below): the winner's page moves to its results
    winner.until("the results", lambda: winner.driver.find_elements("css selector", "#att-counts"), 90)
    loser.until("the overlay lifted", lambda: overlay(loser) is None, 20)
    world.found["race"] = sessions[0]["session_id"]


def test_unknown_faces_assigned_and_dismissed(world: World, teacher: Browser) -> None:
    b = teacher
    lecture, race = world.found["lecture"], world.found["race"]
    other, faces = _a_session_with_a_visitor(world, race, lecture)  # before its visitor becomes a student
    b.driver.get(f"{world.nr.url}/dashboard/unknown?session={lecture}")
    b.until("the gallery", lambda: b.driver.find_elements("css selector", ".att-face"), 30)
    (face,) = world.box("unknown_faces", {"session_id": lecture})
    card = f"#att-face-{face['face_id']}"
    b.until("the crop loaded", lambda: b.js(f"return document.querySelector('{card} img').naturalWidth") > 0)
    world.shot(b, "unknown")
    b.select(f"{card} .att-assign-to", "*new")
    b.fill(f"{card} .att-new-id", "V001")
    b.fill(f"{card} .att-new-name", "Vera Visitor")
    b.press("Assign", card)
    b.until("assigned", lambda: "assigned to Vera Visitor (V001)" in b.el(card).text, 60)
    assert world.box("unknown_faces", {"session_id": lecture})[0]["assigned_to"] == "V001"
    assert any(s["student_id"] == "V001" for s in world.box("students", {"section": "demo"}))
    # another session's visitor: dismissed, hidden, and shown again on asking
    b.select("#att-unknown-session", other)
    card = f"#att-face-{faces[0]['face_id']}"
    b.press("Dismiss", card)
    b.until("the face hidden", lambda: not b.driver.find_elements("css selector", card), 30)
    assert world.box("unknown_faces", {"session_id": other})[0]["dismissed"] is True
    b.el("#att-show-dismissed").click()
    b.until("the dismissed face", lambda: "dismissed" in b.el(card).text)


def _a_session_with_a_visitor(world: World, race: str, lecture: str) -> tuple[str, list[dict[str, Any]]]:
    """The race's session, else another that kept an unknown face. Whether a run of the lecture keeps its
    visitor depends on when its encodings land (a file is read faster than real time, and the console's world
    runs two browsers and two Node-REDs beside the daemon), so failing all, the lecture is run once more (while
    its visitor is nobody on the roster yet)."""
    others = [s["session_id"] for s in world.box("sessions", {"limit": 50}) if s["session_id"] not in (race, lecture)]
    for sid in [race, *others]:
        if faces := world.box("unknown_faces", {"session_id": sid}):
            return sid, faces
    sid = world.box("start_mp4", {"media": "lecture.mp4", "section": "demo", "session_name": "lecture-again"})[
        "session"]["id"]
    deadline = time.monotonic() + 120
    while world.box("status")["mode"] != "idle":
        assert time.monotonic() < deadline, "the lecture's second run did not end"
        time.sleep(0.5)
    faces = world.box("unknown_faces", {"session_id": sid})
    assert faces, "no session of the lecture kept its visitor: the race's, the others and one more run"
    return sid, faces


def test_students_from_photo_files_and_from_the_camera(world: World, teacher: Browser) -> None:
    b = teacher
    b.open("students", "Add a student")
    b.until("the roster", lambda: "V001" in b.el("#att-student-list").text, 30)
    b.fill("#att-add-id", "S010")
    b.fill("#att-add-name", "Eileen Collins")
    b.el("#att-add-files").send_keys(str(FACES / "people" / "collins_photo.png"))
    b.press("Add")
    b.until("the photo enrolled", lambda: "Enrolled 1 of 1 photos." in b.el("#att-add-outcome").text, 60)
    b.until("S010 listed with one photo", lambda: b.el("#att-student-S010").text.startswith("Eileen Collins S010 1"),
            20)
    # from the box's camera: the face turning in front of the desk camera (Barack Obama's, already S001)
    b.fill("#att-add-id", "S011")
    b.fill("#att-add-name", "Desk Visitor")
    b.el("#att-how-camera").click()
    b.select("#att-add-camera", "desk")
    b.fill("#att-add-seconds", "6")
    b.press("Add")
    b.wait_text("Filming…", 10)
    b.until("the capture's outcome", lambda: "Looked at" in b.el("#att-add-outcome").text, 90)
    outcome = b.el("#att-add-outcome").text
    photos = world.box("student_photos", {"section": "demo", "student_id": "S011"})
    assert photos and f"enrolled {len(photos)} photos" in outcome, outcome
    thumbs = b.driver.find_elements("css selector", "#att-add-outcome img")
    assert len(thumbs) == len(photos)
    b.until("the kept photos shown", lambda: all(
        b.js("return arguments[0].naturalWidth", t) > 0 for t in thumbs), 20)
    assert "⚠" in outcome and "S001" in outcome  # the near-duplicate warning: the face is Barack Obama's
    world.shot(b, "students")
    # removed (the button asks once more)
    row = "#att-student-S010"
    b.press("Remove", row)
    b.press("Really remove?", row)
    b.until("S010 gone", lambda: not b.driver.find_elements("css selector", row), 30)
    assert all(s["student_id"] != "S010" for s in world.box("students", {"section": "demo"}))


def test_history_of_sessions_and_of_a_student(world: World, teacher: Browser) -> None:
    b = teacher
    b.open("history", "Sessions")
    b.select("#att-history-section", "demo")
    b.until("the sessions", lambda: "lecture-monday" in b.el("#att-sessions").text
            and "camera-tuesday" in b.el("#att-sessions").text, 30)
    b.select("#att-history-student", "S001")
    history = world.box("student_history", {"section": "demo", "student_id": "S001"})
    b.until("the student's summary", lambda: f"attended {history['attended']} of {history['counted']} sessions"
            in b.el("#att-student-summary").text, 30)
    world.shot(b, "history")
    rows = b.driver.find_elements("css selector", "#att-sessions tbody tr")
    row = next(r for r in rows if "lecture-monday" in r.text)
    row.find_element("css selector", "button").click()
    b.until("the lecture's results", lambda: "lecture-monday" in b.text()
            and b.driver.find_elements("css selector", "#att-counts"), 30)


def test_the_record_corrected_undone_finalised_and_reopened(world: World, teacher: Browser) -> None:
    """The lecture's record on its Results page: a student corrected (with a note) shows the new status, marked
    corrected with what recognition saw, and the trail says so; undone; finalised (Correct disabled); a
    correction the box refuses (finalised elsewhere meanwhile) shows its 409; reopened."""
    b, sid = teacher, world.found["lecture"]
    b.driver.get(f"{world.nr.url}/dashboard/results?session={sid}")
    b.until("a draft record", lambda: "Record: draft" in b.el("#att-record").text, 30)
    s = next(p for p in world.box("session", {"session_id": sid})["present"] if p["status"] == "present")
    who, row = f"{s['name']} ({s['student_id']})", f"#att-row-{s['student_id']}"
    b.press("Correct", row)
    b.select(".att-correct-status", "excused")
    b.fill(".att-correct-note", "doctor's note")
    b.press("Save", "tr.att-editor")
    b.until("the correction", lambda: "excused ✎ corrected" in b.el(row).text
            and f"{who} → excused" in b.el("#att-trail").text, 20)
    assert "recognised: present · doctor's note" in b.el(row).text and s["name"] in b.el("#att-absent").text
    ((action, status, client, note),) = [(e["action"], e["status"], e["client"], e["note"])
                                         for e in world.box("corrections", {"session_id": sid})["corrections"]]
    assert (action, status, client, note) == ("correct", "excused", "console", "doctor's note")
    world.shot(b, "record")
    b.press("Undo", row)
    b.until("the recognised status again", lambda: "corrected" not in b.el(row).text
            and f"{who}: correction undone" in b.el("#att-trail").text, 20)
    assert s["name"] in b.el("#att-present").text and f"{who} → excused (undone)" in b.el("#att-trail").text
    with world.events() as events:  # Finalise: the record final, and the box's absence notice
        b.press("Finalise")
        b.until("a final record", lambda: "Record: final" in b.el("#att-record").text, 20)
        notice = events.wait_for("events", lambda e: e["type"] == "absences", timeout=20)
    absent = [a["student_id"] for a in world.box("session", {"session_id": sid})["absent"] if a["status"] == "absent"]
    assert notice["session_id"] == sid and [a["student_id"] for a in notice["absent"]] == absent
    assert "finalised" in b.el("#att-trail").text and "The record is final" in b.text()
    b.button("Reopen")
    assert all(not x.is_enabled() for x in b.driver.find_elements("css selector", "#att-results td button"))
    # reopened; a correction under way while someone else finalises: the box's refusal is shown, then the record
    b.press("Reopen")
    b.until("a draft again", lambda: "Record: draft" in b.el("#att-record").text, 20)
    b.press("Correct", row)
    b.select(".att-correct-status", "absent")
    assert world.box("finalize", {"session_id": sid, "client": "office"})["record"] == "final"
    b.press("Save", "tr.att-editor")
    b.until("the refusal", lambda: "409" in b.el(f"{row} + tr .att-error").text
            and "Record: final" in b.el("#att-record").text, 20)
    b.press("Reopen")
    b.until("reopened", lambda: "Record: draft" in b.el("#att-record").text, 20)
    trail = [e["action"] for e in world.box("corrections", {"session_id": sid})["corrections"]]
    assert trail == ["correct", "undo", "finalize", "reopen", "finalize", "reopen"]
    # the lecture's republished results (not retained: it is not the newest session) left the flow's last results
    newest = world.box("sessions", {"limit": 1})[0]["session_id"]
    assert newest != sid and b.js("return AttendanceConsole.live.results.session_id") == newest


def test_screenshots_are_1280x800(world: World) -> None:
    taken = {p.name for p in world.shots.glob("*.png")}
    assert taken == {f"node-red-console-{name}.png" for name in SHOTS}
    for p in world.shots.glob("*.png"):
        img = cv2.imread(str(p))
        assert img is not None and img.shape[:2] == (HEIGHT, WIDTH), (p.name, img.shape if img is not None else None)
