"""The deploy under a real systemd: a Debian bookworm root made with debootstrap, booted with systemd-nspawn.

`deploy/install.sh` runs in it twice (the second time offline, without --password), then the daemon is driven
over MQTT with the deploy's credentials: READY, an MP4 session, `systemctl stop` mid-session, kill -9, a frozen
process and the watchdog, and the unit's exposure score. Run by scripts/test.sh after the main suite, as root:

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/system/deploy_container.py

This file does not match the suite's `test_*.py` pattern, so the main run never collects it. The root and the
wheelhouse are cached under $ATTENDANCE_CI_CACHE (default /var/cache/attendance-daemon-ci), keyed by what they are
made of. The container has no network (--private-network): pip installs from the host-built wheelhouse, and the
second install from the box's own wheel cache. Nothing here skips: no root, no nspawn, no boot is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ATTENDANCE_CI_CACHE", "/var/cache/attendance-daemon-ci"))
SUITE = "bookworm"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "mosquitto", "mosquitto-clients",
            "ca-certificates", "procps",
            # what install.sh installs when missing (the container has no network): report fonts
            "fonts-dejavu-core", "fonts-noto-core", "fonts-droid-fallback"]
ROOT_RECIPE = "1"  # bump when _customise_root changes
DEVICE = "ci-box"
PASSWORD = "ci-secret-1"
# The shipped broker ties client ids to users (use_username_as_clientid): a tool logged in as the device's user
# would take over the daemon's connection, so commands go through the dashboard user, as the README says.
DASHBOARD_PASSWORD = "ci-dashboard-1"
UNIT = "attendance-daemon.service"
VENV = "/opt/attendance-daemon/venv/bin"
CONF = "/etc/attendance-daemon/config.toml"
MEDIA = "/var/lib/attendance-daemon/media"
ENROLLMENT = "/var/lib/attendance-daemon/enrollment"
MAX_EXPOSURE = 2.5
SRC_EXCLUDES = {".venv", ".cache", ".git", "data", "build", "__pycache__", ".mypy_cache", ".ruff_cache",
                ".pytest_cache"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run on the host; the output is shown only when it fails."""
    r = subprocess.run(cmd, check=False, text=True, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {shlex.join(cmd)}\n{r.stdout[-6000:]}")
    return r


# ---- the cached root and wheelhouse --------------------------------------------------------------------------

def debian_mirror() -> str:
    """The host's Debian mirror (deb822 `.sources` or one-line `sources.list`), default deb.debian.org."""
    apt = Path("/etc/apt")
    for f in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]:
        if not f.is_file() or f.suffix not in {".list", ".sources", ""}:
            continue
        text = f.read_text(errors="replace")
        for m in re.finditer(r"^\s*URIs:\s*(\S+)", text, re.M):
            if m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1)
        for m in re.finditer(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            if m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1)
    return "http://deb.debian.org/debian"


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _customise_root(root: Path) -> None:
    """What the host lends the container: CA certificates, apt and pip configuration; no console getty."""
    (root / "etc/systemd/system/console-getty.service").symlink_to("/dev/null")
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    local_ca = Path("/usr/local/share/ca-certificates")
    if local_ca.is_dir():
        shutil.copytree(local_ca, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    for sub in ["sources.list", "sources.list.d", "apt.conf.d", "trusted.gpg.d"]:
        src = Path("/etc/apt") / sub
        if src.is_file():
            shutil.copy2(src, root / "etc/apt" / sub)
        elif src.is_dir():
            shutil.copytree(src, root / "etc/apt" / sub, dirs_exist_ok=True)
    if Path("/etc/pip.conf").is_file():
        shutil.copy2("/etc/pip.conf", root / "etc/pip.conf")
    user_pip = Path.home() / ".config/pip"
    if user_pip.is_dir():
        shutil.copytree(user_pip, root / "root/.config/pip", dirs_exist_ok=True)


def ensure_root() -> Path:
    mirror = debian_mirror()
    root = CACHE / f"root-{_key(SUITE, mirror, *PACKAGES, ROOT_RECIPE)}"
    if (root / ".ready").exists():
        log(f"cached root {root}")
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"debootstrap {SUITE} from {mirror} into {tmp}")
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(tmp), mirror],
        timeout=1200)
    _customise_root(tmp)
    return _keep(tmp, root)


def _keep(tmp: Path, final: Path) -> Path:
    """A finished cache entry becomes `final` (marked ready); entries of the same kind with other keys go."""
    (tmp / ".ready").touch()
    kind = final.name.rsplit("-", 1)[0]
    for old in CACHE.glob(f"{kind}-*"):
        if old != tmp:
            shutil.rmtree(old, ignore_errors=True)
    tmp.rename(final)
    return final


def ensure_wheelhouse() -> Path:
    reqs = [REPO / "requirements.txt", REPO / "requirements-nodeps.txt"]
    house = CACHE / f"wheels-{_key(*(p.read_text() for p in reqs))}"
    if (house / ".ready").exists():
        return house
    tmp = house.with_name(house.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(tmp)]
    log(f"building the wheelhouse {house}")
    run([*pip, "-r", str(reqs[0]), "setuptools", "wheel"], timeout=1200)
    run([*pip, "--no-deps", "-r", str(reqs[1])], timeout=1200)
    return _keep(tmp, house)


def ensure_sample() -> Path:
    """The project's demo sample (enrollment tree, video, ground truth), made on the host (it fetches photos),
    cached by the demo code that makes it."""
    demo = sorted((REPO / "attendance_daemon/demo").glob("*.py"))
    sample = CACHE / f"sample-{_key(*(p.read_text() for p in demo))}"
    if (sample / ".ready").exists():
        return sample
    tmp = sample.with_name(sample.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"making the demo sample {sample}")
    run([str(Path(sys.executable).parent / "attendance-daemon"), "sample", "--out", str(tmp),
         "--cache", str(REPO / ".cache/faces")], cwd=REPO, timeout=900)
    return _keep(tmp, sample)


# ---- the booted container -------------------------------------------------------------------------------------

def _ns_pid1_of(nspawn_pid: int) -> int | None:
    """Host pid of the container's init: a descendant of nspawn whose pid in its namespace is 1."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        ns = fields.get("NSpid", "").split()
        if len(ns) < 2 or ns[-1] != "1":
            continue
        pid = int(status.parent.name)
        p = pid
        while p > 1:
            try:
                p = int(dict(ln.split(":", 1) for ln in Path(f"/proc/{p}/status").read_text().splitlines()
                             if ":" in ln)["PPid"])
            except (OSError, KeyError, ValueError):
                break
            if p == nspawn_pid:
                return pid
    return None


@dataclass
class Box:
    root: Path
    proc: subprocess.Popen[bytes]
    leader: int
    truth: dict[str, Any] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)

    def sh(self, script: str, timeout: float = 120, check: bool = True) -> str:
        """Run a shell script inside the container (all its namespaces, a clean environment)."""
        cmd = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "--",
               "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME=/root", "LANG=C.UTF-8", "/bin/bash", "-c", script]
        r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"in the container, exit {r.returncode}: {script}\n--- stdout\n{r.stdout[-4000:]}"
                                 f"\n--- stderr\n{r.stderr[-4000:]}")
        return r.stdout

    def show(self, prop: str) -> str:
        return self.sh(f"systemctl show -p {prop} --value {UNIT}").strip()

    def ctl(self, args: str, timeout: float = 120) -> Any:
        """attendancectl as the deploy's dashboard user (the shipped ACL lets it command every device), once the
        daemon is online (READY comes before the broker connection, and attendancectl fails fast on offline)."""
        self.wait("the daemon online on its broker", lambda: self.availability() == "online", timeout=90)
        out = self.sh(f"{VENV}/attendancectl --device {DEVICE} --username dashboard --password "
                      f"{DASHBOARD_PASSWORD} {args}", timeout)
        return json.loads(out[out.index("{"):])

    def availability(self) -> str:
        return self.sh(f"mosquitto_sub -h 127.0.0.1 -u dashboard -P {DASHBOARD_PASSWORD} "
                       f"-t attendance/{DEVICE}/availability -C 1 -W 5", check=False).strip()

    def cli(self, args: str, timeout: float = 120) -> str:
        return self.sh(f"runuser -u attendance -- {VENV}/attendance-daemon --config {CONF} {args}", timeout)

    def wait(self, what: str, pred: Callable[[], bool], timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if pred():
                return time.monotonic() - t0
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.journal()}")

    def journal(self, lines: int = 60) -> str:
        return self.sh(f"journalctl -u {UNIT} --no-pager -o short-monotonic | tail -n {lines}", check=False)

    def active_pid(self) -> int:
        return int(self.show("MainPID")) if self.show("ActiveState") == "active" else 0


def _boot(root: Path, wheels: Path, log_path: Path) -> Box:
    cmd = ["systemd-nspawn", "-D", str(root), "-b", "--register=no", "--keep-unit", "--private-network",
           "--machine=attendance-ci", "--console=pipe", f"--bind-ro={wheels}:/wheelhouse"]
    log("boot: " + shlex.join(cmd))
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    leader = None
    while leader is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        leader = _ns_pid1_of(proc.pid)
    if leader is None:
        proc.kill()
        raise AssertionError(f"systemd-nspawn did not boot (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
    box = Box(root, proc, leader)
    state = ""
    while time.monotonic() < deadline + 120 and state not in {"running", "degraded"}:
        time.sleep(0.5)  # until systemd's private socket exists, systemctl prints nothing
        state = box.sh("systemctl is-system-running --wait 2>/dev/null || true", timeout=180).strip()
    if state not in {"running", "degraded"}:
        failed = box.sh("systemctl --failed --no-pager", check=False)
        _halt(box)
        raise AssertionError(f"the container did not finish booting: {state!r}\n{failed}")
    log(f"booted: {state}")
    return box


def _halt(box: Box) -> None:
    if box.proc.poll() is None:
        box.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
        try:
            box.proc.wait(60)
        except subprocess.TimeoutExpired:
            box.proc.kill()
            box.proc.wait(10)


def _unmount(path: Path) -> None:
    if path.is_mount():
        run(["umount", str(path)])


def _stage_root(root: Path, work: Path) -> Path:
    """A throw-away copy of the cached root: an overlay on it (instant), or a plain copy where overlayfs is not
    available."""
    merged = work / "root"
    _unmount(merged)
    shutil.rmtree(work, ignore_errors=True)
    for d in ["upper", "ovl-work", "root"]:
        (work / d).mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={root},upperdir={work / 'upper'},workdir={work / 'ovl-work'}", str(merged)],
                       check=False, capture_output=True, text=True)
    if r.returncode != 0:
        log(f"no overlayfs ({r.stderr.strip()}): copying the root")
        merged.rmdir()
        run(["cp", "-a", "--reflink=auto", str(root), str(merged)])
    return merged


@pytest.fixture(scope="module")
def box(request: pytest.FixtureRequest) -> Iterator[Box]:
    assert os.geteuid() == 0, "the container test needs root (debootstrap, systemd-nspawn)"
    for tool in ["debootstrap", "systemd-nspawn", "nsenter"]:
        assert shutil.which(tool), f"{tool} is missing: scripts/test.sh installs debootstrap and systemd-container"
    t0 = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    root, wheels = ensure_root(), ensure_wheelhouse()
    work = CACHE / "run"
    rroot = _stage_root(root, work)
    shutil.copytree(REPO, rroot / "root/src", ignore=lambda _d, names: [n for n in names if n in SRC_EXCLUDES])
    sample = ensure_sample()
    shutil.copytree(sample, rroot / "root/sample")
    truth = json.loads((sample / "ground_truth.json").read_text())
    log(f"root, wheels and sample ready in {time.monotonic() - t0:.0f} s")
    b = _boot(rroot, wheels, work / "console.log")
    b.truth = truth
    try:
        yield b
    finally:
        if request.session.testsfailed:
            log("daemon journal (tail):\n" + b.journal(80))
        _halt(b)
        _unmount(rroot)
        log(f"container test took {time.monotonic() - t0:.0f} s in all")


# ---- the checks, in order -------------------------------------------------------------------------------------

def test_install_then_reinstall_offline_without_password(box: Box) -> None:
    t0 = time.monotonic()
    box.sh(f"bash /root/src/deploy/install.sh --device-id {DEVICE} --password {PASSWORD} --offline "
           f"--wheels /wheelhouse", timeout=900)
    log(f"first install: {time.monotonic() - t0:.0f} s")
    assert box.show("ActiveState") == "active"
    box.sh(f"mosquitto_passwd -b /etc/mosquitto/attendance.passwd dashboard {DASHBOARD_PASSWORD} && "
           "systemctl reload mosquitto")  # as the README tells the admin
    first_pid = box.active_pid()
    first_release = box.sh("readlink /opt/attendance-daemon/current").strip()

    t0 = time.monotonic()  # an upgrade: offline (only the box's wheel cache), and without --password
    box.sh("bash /root/src/deploy/install.sh --offline", timeout=900)
    log(f"second install (offline, no --password): {time.monotonic() - t0:.0f} s")
    assert box.sh(f"python3 /root/src/deploy/mqtt_config.py get {CONF} password").strip() == PASSWORD
    assert box.sh(f"python3 /root/src/deploy/mqtt_config.py get {CONF} device_id").strip() == DEVICE
    second_release = box.sh("readlink /opt/attendance-daemon/current").strip()
    assert second_release != first_release
    assert box.active_pid() not in {0, first_pid}, "the upgrade did not restart the running daemon"
    # the broker knows the password the daemon has: the daemon is connected and answers (the dashboard user
    # survived the reinstall's password-file update)
    assert box.ctl("status")["mode"] == "idle"
    assert "Not authorized" not in box.journal(200)

    # a reinstall whose build fails (a wheel that is not there, offline) leaves the running install untouched
    pid = box.active_pid()
    out = box.sh("rm -rf /root/broken && cp -r /root/src /root/broken && "
                 "echo 'no-such-package-xyz==1.0' >> /root/broken/requirements.txt && "
                 "bash /root/broken/deploy/install.sh --offline 2>&1; echo rc=$?", timeout=600)
    assert "rc=0" not in out and "the installed release is unchanged" in out
    assert box.sh("readlink /opt/attendance-daemon/current").strip() == second_release
    assert box.active_pid() == pid
    assert box.sh("ls /opt/attendance-daemon/releases | wc -l").strip() == "2"


def test_ready_after_restart(box: Box) -> None:
    t0 = time.monotonic()
    box.sh(f"systemctl restart {UNIT}", timeout=200)  # Type=notify: returns once READY=1 came
    took = time.monotonic() - t0
    log(f"restart to READY: {took:.1f} s; status: {box.show('StatusText')}")
    assert box.show("ActiveState") == "active" and box.show("SubState") == "running"
    assert took < 60


def _enroll_and_stage(box: Box) -> None:
    if box.session_ids:
        return
    box.sh(f"install -d {ENROLLMENT} {MEDIA} && cp -r /root/sample/enrollment/. {ENROLLMENT}/ && "
           f"cp /root/sample/media/classroom.mp4 {MEDIA}/ && chown -R attendance: {ENROLLMENT} {MEDIA}")
    box.cli(f"enroll-bulk {ENROLLMENT}", timeout=300)
    info = box.sh(f"mosquitto_sub -h 127.0.0.1 -u dashboard -P {DASHBOARD_PASSWORD} -t attendance/{DEVICE}/info "
                  "-C 1 -W 10")
    log(f"retained info after the CLI enroll-bulk: {info.strip()[:300]}")


def _start_paused(box: Box, name: str) -> str:
    state = box.ctl(f"start-mp4 classroom.mp4 --section demo --name {name}")
    sid: str = state["session"]["id"]
    box.ctl("pause")
    box.session_ids.append(sid)
    return sid


def _stored(box: Box, sid: str) -> dict[str, Any]:
    out = box.cli(f"show {sid}")
    result: dict[str, Any] = json.loads(out)
    return result


def test_mp4_session_over_mqtt_with_the_deploy_credentials(box: Box) -> None:
    _enroll_and_stage(box)
    t0 = time.monotonic()
    results = box.ctl("start-mp4 classroom.mp4 --section demo --name ci-full --watch", timeout=300)
    log(f"session over MQTT: {time.monotonic() - t0:.1f} s, {results['present_count']} present")
    box.session_ids.append(results["session_id"])
    # peak resident memory of the daemon and its children (cgroup memory accounting may be absent in the
    # container): what MemoryHigh/MemoryMax must leave room for
    hwm = box.sh(f"for p in $(systemctl show -p MainPID --value {UNIT}) "
                 f"$(pgrep -P $(systemctl show -p MainPID --value {UNIT})); do "
                 "grep VmHWM /proc/$p/status; done | awk '{s += $2} END {print s}'")
    peak_mb = int(hwm.strip() or 0) // 1024
    log(f"peak RSS of the daemon + children after the session: {peak_mb} MB "
        f"(MemoryHigh {int(box.show('MemoryHigh')) >> 20} MB, MemoryMax {int(box.show('MemoryMax')) >> 20} MB)")
    assert 0 < peak_mb < int(box.show("MemoryHigh")) >> 20
    assert results["status"] == "completed"
    assert sorted(p["student_id"] for p in results["present"]) == box.truth["expected"]["present"]
    assert sorted(a["student_id"] for a in results["absent"]) == box.truth["expected"]["absent"]


def test_systemctl_stop_mid_session_is_stopped_and_exit_0(box: Box) -> None:
    _enroll_and_stage(box)
    sid = _start_paused(box, "ci-stop")
    box.sh(f"systemctl stop {UNIT}", timeout=120)
    assert box.show("ActiveState") == "inactive"
    assert box.show("Result") == "success" and box.show("ExecMainStatus") == "0"
    assert _stored(box, sid)["status"] == "stopped"
    # KillMode=mixed: SIGTERM reached the main process only, which ended its encoder child itself
    assert "encoder process died" not in box.journal(200)
    box.sh(f"systemctl start {UNIT}", timeout=200)


def test_kill_9_restarts_with_the_session_interrupted(box: Box) -> None:
    _enroll_and_stage(box)
    sid = _start_paused(box, "ci-kill9")
    pid = box.active_pid()
    box.sh(f"kill -9 {pid}")
    took = box.wait("a restart after kill -9", lambda: box.active_pid() not in {0, pid}, timeout=120)
    log(f"kill -9 -> READY again: {took:.1f} s")
    assert _stored(box, sid)["status"] == "interrupted"
    assert box.ctl("status")["mode"] == "idle"


def test_frozen_daemon_is_restarted_by_the_watchdog(box: Box) -> None:
    _enroll_and_stage(box)
    sid = _start_paused(box, "ci-watchdog")
    pid = box.active_pid()
    box.sh(f"kill -STOP {pid}")
    took = box.wait("the watchdog's restart", lambda: box.active_pid() not in {0, pid}, timeout=150)
    log(f"SIGSTOP -> watchdog restart -> READY: {took:.1f} s")
    assert "Watchdog timeout" in box.sh(f"journalctl -u {UNIT} --no-pager | tail -n 200")
    assert _stored(box, sid)["status"] == "interrupted"


def test_exposure_score_live(box: Box) -> None:
    out = box.sh(f"systemd-analyze security --no-pager {UNIT}")
    m = re.search(rf"Overall exposure level for {re.escape(UNIT)}: (\d+\.\d+)", out)
    assert m, out[-2000:]
    log(f"systemd-analyze security: {m.group(0)}")
    assert float(m.group(1)) <= MAX_EXPOSURE, out
