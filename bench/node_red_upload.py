"""Benchmark: Node-RED's memory while the console uploads a 1 GB video (issue 16: "Node-RED's memory must not grow
with the file"). Real parts only: Debian's headless Chromium (selenium, chromium-driver) on the console's Upload
page, Node-RED 4 with the shipped flows.json (npm, scripts/node-red.sh), mosquitto, the daemon as a process.

The browser hashes the file (SHA-256, in pieces), then PUTs it to the flow in chunk_bytes pieces (two in flight);
the flow publishes each as one MQTT chunk and answers while at most 16 MiB of the upload are not yet durable on
the box. Node-RED's VmRSS is sampled every 0.1 s from before the file is chosen until the box has verified it;
VmHWM (the kernel's peak resident set) is read at the end. The file is a short rendered video followed by an
ISO-BMFF `free` box up to `--mb` MB (the daemon's decoder opens it; see bench/upload.py).

    .venv/bin/python -m bench.node_red_upload [--mb 1024]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.upload import MB, PaddedVideo, RssSampler, _proc_kb
from tests.console_browser import Browser
from tests.mqtt_fixtures import Broker, DaemonProcess
from tests.test_node_red import REPO, NodeRed, _flows


def small_video(path: Path) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (320, 240))
    rng = np.random.default_rng(1)
    for _ in range(20):
        out.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    out.release()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024, help="upload size in MB (2**20 bytes)")
    args = ap.parse_args()
    exe = subprocess.run(["bash", str(REPO / "scripts" / "node-red.sh"), "--with-chromium"], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory(dir=REPO / ".cache") as tmp:  # the box's copy needs disk, not /tmp's RAM
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        video = PaddedVideo(small_video(work / "small.mp4"), work / "lecture.mp4", args.mb * MB)
        video.variant(1)
        broker = Broker.with_passwords(work, {"bench-room": "pw", "dashboard": "dash-pw"},
                                       REPO / "deploy" / "mosquitto-attendance.acl")
        daemon = DaemonProcess(work / "d", broker, media, work, None, device="bench-room",
                               mqtt_extra='username = "bench-room"\npassword = "pw"\n').start(wait=False)
        nr = NodeRed(exe, work / "node-red", {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port),
                                              "MQTT_USER": "dashboard", "MQTT_PASSWORD": "dash-pw",
                                              "ATTENDANCE_CLIENT": "bench", "ATTENDANCE_DEVICE": "bench-room"})
        browser = None
        try:
            nr.start()
            nr.deploy(_flows())
            nr.wait(lambda k: (k["devices"].get("bench-room") or {}).get("availability") == "online", timeout=90,
                    what="the box online")
            assert nr.proc is not None and daemon.proc is not None
            browser = Browser(nr.url, work / "downloads")
            browser.open("upload", "Drop an MP4 recording here")
            time.sleep(2)
            pid = nr.proc.pid
            idle_kb = _proc_kb(pid, "VmRSS")
            with RssSampler(pid) as rss, RssSampler(daemon.proc.pid) as box_rss:
                t0 = time.monotonic()
                browser.el("#att-upload-file").send_keys(str(video.path))
                browser.wait_text("uploading", 600)
                t1 = time.monotonic()
                browser.wait_text("done: the video is in the box's library", 1800)
                t2 = time.monotonic()
            hwm_kb = _proc_kb(pid, "VmHWM")
            upload_s = t2 - t1
            result = {"bytes": video.size, "hash_in_browser_s": round(t1 - t0, 1), "upload_s": round(upload_s, 1),
                      "upload_mb_s": round(video.size / 1e6 / upload_s, 1),
                      "node_red_rss_idle_mb": round(idle_kb / 1024, 1),
                      "node_red_rss_peak_mb": round(rss.peak_kb / 1024, 1),
                      "node_red_growth_mb": round((rss.peak_kb - idle_kb) / 1024, 1),
                      "node_red_vmhwm_mb": round(hwm_kb / 1024, 1),
                      "daemon_rss_peak_mb": round(box_rss.peak_kb / 1024, 1)}
            print(json.dumps(result, indent=2))
        finally:
            if browser is not None:
                browser.close()
            nr.stop()
            daemon.stop()
            broker.stop()
            shutil.rmtree(work / "d", ignore_errors=True)


if __name__ == "__main__":
    main()
