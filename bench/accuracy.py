"""Recognition accuracy on realistic classroom scenarios (small faces, full rooms, 480p-1080p, blur, dim light,
heavy H.264, turned heads, covered mouths, a glimpse, a look-alike), with the real pipeline and the default
config. Prints per scenario: recall of present students, who was missed, false presents, unknown-count error
and the real-time factor (video seconds per processing second on this machine); then recall per person.

    .venv/bin/python -m bench.accuracy [--quick] [--detector hog] [--only SUBSTRING] [--json OUT]
    .venv/bin/python -m bench.accuracy --families [dim,blur,occlusion,crf] [--seeds held-out|tune|0-3|1,5]
                                       [--before issue21|fusion]

`--families` runs the seeded hard-room families (demo/families.py) instead of the fixed set, each clip twice in
turn: `before` with the hard-room techniques off (the pipeline before issue 21; `--before fusion`: only the
noisy-room fusion off), `after` with the default config; then recall per family and seed range. Tune on seeds
0-9 (`--seeds tune`); the report is on 100-109 (`--seeds held-out`, the default), not looked at while tuning.

Videos are rendered once into .cache/scenarios/ (keyed by the scenario) and reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from attendance_daemon.attendance.results import build_results
from attendance_daemon.config import Config, PathsConfig
from attendance_daemon.demo.faces import Person, build_people
from attendance_daemon.demo.families import FAMILIES, HELD_OUT_SEEDS, TUNING_SEEDS, family_set, render_family
from attendance_daemon.demo.scenarios import Scenario, render_scenario, scenario_set
from attendance_daemon.sessions.planning import plan_mp4
from attendance_daemon.sessions.runner import SessionRunner
from attendance_daemon.sessions.runtime import Runtime
from attendance_daemon.store import Store

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"


@dataclass
class Outcome:
    scenario: str
    expected: int
    found: int
    missed: list[str]
    false_present: list[str]
    unknowns_expected: int
    unknowns_counted: int
    video_s: float
    seconds: float
    cpu_s: float

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    @property
    def realtime(self) -> float:
        return self.video_s / self.seconds


def scenario_video(sc: Scenario, people_key: str) -> Path:
    """The rendered video of a scenario, cached by everything that shapes it."""
    family = (sc.family,) if sc.family is not None else ()  # the keys of the fixed set stay what they were
    key = hashlib.sha256(repr((people_key, sc.name, sc.width, sc.height, sc.duration_s, sc.fps, sc.condition,
                               [(s.person.key, s.x, s.y, s.face_px, s.start_s, s.end_s) for s in sc.seats],
                               *family)).encode()).hexdigest()[:16]
    path = CACHE / "scenarios" / f"{key}.mp4"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.mp4")
        if sc.family is not None:
            render_family(sc, tmp)
        else:
            render_scenario(sc, tmp)
        tmp.rename(path)
    return path


def enrollment_vectors(people: list[Person], rt: Runtime) -> dict[str, np.ndarray]:
    """Each person's enrollment encoding, through the project's own enrollment (one face per photo)."""
    from attendance_daemon.roster.enrollment import Enroller

    enroller = Enroller(rt.store, rt.encoder)
    for p in people:
        outcome = enroller.enroll("all", p.student_id, p.name, [p.enroll])
        if outcome.encodings_added != 1:
            raise RuntimeError(f"cannot enroll {p.name}: {outcome.rejected}")
    roster, matrix, owners = rt.store.section_encodings("all")
    return {roster[int(o)].student_id: matrix[i] for i, o in enumerate(owners)}


def run_scenario(rt: Runtime, sc: Scenario, video: Path, vectors: dict[str, np.ndarray]) -> Outcome:
    section = f"s{abs(hash(sc.name)) % 10**8}"
    for p in sc.enrolled:
        rowid = rt.store.upsert_student(section, p.student_id, p.name)
        rt.store.add_encoding(rowid, vectors[p.student_id], "bench")
    plan = plan_mp4(rt.cfg, rt.store, str(video), section, None, False, allow_outside_media=True)
    t0, c0 = time.perf_counter(), _cpu()
    row = SessionRunner(rt.cfg, rt.store, rt.detector, rt.encoder, plan).run()
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    results = build_results(rt.store, row, rt.cfg)
    want, unknowns = sc.truth(rt.cfg.recognition.min_presence_s)
    got = {p.student_id for p in results.present}
    names = {p.student_id: p.name for p in sc.enrolled}
    return Outcome(sc.name, len(want), len(want & got), sorted(names[s] for s in want - got),
                   sorted(names[s] for s in got - want), unknowns, results.unknowns, sc.duration_s, seconds, cpu)


def _cpu() -> float:
    """CPU seconds of this process and its live children (the encoder child is reaped only at the end)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + sum(map(_proc_cpu, _children()))


def _children() -> set[int]:
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out.update(int(p) for p in text.split())
    return out


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# issue 21's techniques off: the pipeline as it was before them (the `before` column of --families)
BEFORE: dict[str, object] = {"mean_tolerance": 0.0, "quality_ratio": 0.0, "low_light_luma": 0.0, "fuse_views": 0}
# --before fusion: only the noisy-room fusion off (the pipeline before it, issue 21's first techniques kept)
BASELINES: dict[str, dict[str, object]] = {"issue21": BEFORE, "fusion": {"fuse_views": 0}}


def run(quick: bool, detector: str | None, only: str | None, families: list[Scenario] | None = None,
        compare: bool = False, before: dict[str, object] = BEFORE) -> list[Outcome]:
    """Each scenario's outcome with the default config; with `compare`, first with `before` (named `... before`)."""
    people = build_people(CACHE / "faces")
    people_key = ",".join(p.key for p in people)
    scenarios = families if families is not None else scenario_set(people, full=not quick)
    scenarios = [s for s in scenarios if not only or only in s.name]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(paths=PathsConfig(data_dir=Path(tmp) / "data", media_dir=Path(tmp) / "media"))
        if detector:
            cfg.recognition = cfg.recognition.model_copy(update={"detector": detector})
        cfg.ensure_dirs()
        rt = Runtime(cfg, Store(cfg.paths.database))
        vectors = enrollment_vectors(people, rt)
        rt.detector.detect(np.zeros((1080, 1920, 3), np.uint8))  # models loaded before any clock starts
        outcomes = []
        after = rt.cfg.recognition
        for sc in scenarios:
            video = scenario_video(sc, people_key)
            if compare:
                rt.cfg.recognition = after.model_copy(update=before)
                out = run_scenario(rt, sc, video, vectors)
                out.scenario += " before"
                print(_line(out), flush=True)
                outcomes.append(out)
                rt.cfg.recognition = after
            out = run_scenario(rt, sc, video, vectors)
            print(_line(out), flush=True)
            outcomes.append(out)
        rt.close()
    return outcomes


def _line(o: Outcome) -> str:
    return (f"| {o.scenario} | {o.found}/{o.expected} ({100 * o.recall:.0f} %) | {', '.join(o.missed) or '-'} | "
            f"{len(o.false_present)}{' ' + ', '.join(o.false_present) if o.false_present else ''} | "
            f"{o.unknowns_counted - o.unknowns_expected:+d} ({o.unknowns_counted}/{o.unknowns_expected}) | "
            f"{o.realtime:.1f}x | {100 * o.cpu_s / o.video_s:.0f} % |")


def per_person(outcomes: list[Outcome], scenarios: dict[str, Scenario]) -> dict[str, tuple[int, int]]:
    """(found, expected) per student name over all scenarios."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        want, _ = scenarios[o.scenario].truth(3.0)
        names = {p.student_id: p.name for p in scenarios[o.scenario].enrolled}
        for sid in want:
            tally[names[sid]][1] += 1
            if names[sid] not in o.missed:
                tally[names[sid]][0] += 1
    return {k: (v[0], v[1]) for k, v in sorted(tally.items())}


def seed_range(text: str) -> tuple[int, ...]:
    if text in ("held-out", "tune"):
        return HELD_OUT_SEEDS if text == "held-out" else TUNING_SEEDS
    if "-" in text:
        a, b = text.split("-")
        return tuple(range(int(a), int(b) + 1))
    return tuple(int(x) for x in text.split(","))


def family_table(outcomes: list[Outcome], seeds: tuple[int, ...]) -> list[str]:
    """Recall before/after per family over the seeds run, and false presents (both)."""
    span = f"{min(seeds)}-{max(seeds)}" if seeds == tuple(range(min(seeds), max(seeds) + 1)) else str(seeds)
    lines = [f"| family (seeds {span}) | recall before | recall after | false presents before/after | "
             "unknowns counted/true after | CPU after/before |", "|---|---|---|---|---|---|"]
    for kind in FAMILIES:
        rows = {o.scenario: o for o in outcomes if o.scenario.startswith(f"{kind} seed ")}
        after = [o for name, o in rows.items() if not name.endswith(" before")]
        before = [o for name, o in rows.items() if name.endswith(" before")]
        if not after:
            continue

        def tally(os: list[Outcome]) -> str:
            f, e = sum(o.found for o in os), sum(o.expected for o in os)
            return f"{f}/{e} ({100 * f / max(1, e):.0f} %)" if os else "-"

        cpu = sum(o.cpu_s for o in after) / max(1e-9, sum(o.cpu_s for o in before)) if before else float("nan")
        lines.append(f"| {kind} | {tally(before)} | {tally(after)} | "
                     f"{sum(len(o.false_present) for o in before)}/{sum(len(o.false_present) for o in after)} | "
                     f"{sum(o.unknowns_counted for o in after)}/{sum(o.unknowns_expected for o in after)} | "
                     f"{cpu:.2f}x |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small subset (what the tests run)")
    ap.add_argument("--detector", choices=["tflite", "hog"], help="override the default detector")
    ap.add_argument("--only", help="run scenarios whose name contains this")
    ap.add_argument("--json", type=Path, help="also write the outcomes as JSON")
    ap.add_argument("--families", nargs="?", const=",".join(FAMILIES),
                    help="run the seeded hard-room families (comma list; all by default), before and after")
    ap.add_argument("--compare", action="store_true", help="fixed set: each scenario with BEFORE too")
    ap.add_argument("--tables", type=Path, nargs="+", help="only print the family tables of --json files (runs split "
                    "over processes)")
    ap.add_argument("--seeds", default="held-out", help="held-out (100-109), tune (0-9), A-B or A,B,C")
    ap.add_argument("--before", choices=sorted(BASELINES), default="issue21", help="what the before column turns off: "
                    "issue 21's techniques (default) or only the noisy-room fusion")
    args = ap.parse_args()
    if args.tables:
        outs = [Outcome(**o) for path in args.tables for o in json.loads(path.read_text())]
        seeds = tuple(sorted({int(o.scenario.split()[2]) for o in outs if " seed " in o.scenario}))
        print("\n".join(family_table(outs, seeds)))
        return
    if args.families:
        seeds = seed_range(args.seeds)
        fams = family_set(build_people(CACHE / "faces"), seeds, tuple(args.families.split(",")))
        print("| clip | recall | missed | false presents | unknowns (counted/true) | real time | CPU (1 core) |")
        print("|---|---|---|---|---|---|---|")
        outcomes = run(False, args.detector, args.only, fams, compare=True, before=BASELINES[args.before])
        print(f"\nload average {os.getloadavg()[0]:.1f}\n")
        print("\n".join(family_table(outcomes, seeds)))
        if args.json:
            args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
        return
    print("| scenario | recall | missed | false presents | unknowns (counted/true) | real time | CPU (1 core) |")
    print("|---|---|---|---|---|---|---|")
    outcomes = run(args.quick, args.detector, args.only, compare=args.compare, before=BASELINES[args.before])
    people = build_people(CACHE / "faces")
    scenarios = {s.name: s for s in scenario_set(people, full=not args.quick)}
    scenarios |= {f"{name} before": sc for name, sc in scenarios.items()}
    found = sum(o.found for o in outcomes)
    expected = sum(o.expected for o in outcomes)
    print(f"\noverall recall {found}/{expected} ({100 * found / max(1, expected):.1f} %), "
          f"false presents {sum(len(o.false_present) for o in outcomes)}")
    print("per person: " + ", ".join(f"{k} {f}/{e}" for k, (f, e) in per_person(outcomes, scenarios).items()))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))


if __name__ == "__main__":
    main()

