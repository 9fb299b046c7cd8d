"""The absence notice of a record that became final: who was absent and who was late, with a subject and a text
ready for a phone notification or an e-mail (a Home Assistant automation or a Node-RED e-mail node uses them as
they are). No I/O: Results in, the event out."""

from __future__ import annotations

from ..common.timeutil import now_iso, parse_iso
from ..config import Config
from ..contract.api import Results
from ..contract.record_api import Absences, NoticeStudent


def absences(results: Results, cfg: Config) -> Absences:
    zone = cfg.attendance.zone()[1]
    date = parse_iso(results.started_at).astimezone(zone).date().isoformat()
    absent = [NoticeStudent(student_id=a.student_id, name=a.name, status=a.status)
              for a in results.absent if a.status == "absent"]
    late = [NoticeStudent(student_id=p.student_id, name=p.name, status=p.status, arrived_at=p.arrived_at)
            for p in results.present if p.status == "late"]
    subject = f"Attendance {results.section} {date}: {len(absent)} absent, {len(late)} late"
    lines = [f"Session {results.name} ({results.section}, {date}), record final."]
    lines.append("Absent: " + (", ".join(f"{s.name} ({s.student_id})" for s in absent) or "nobody"))
    lines.append("Late: " + (", ".join(f"{s.name} ({s.student_id}, arrived {_clock(s.arrived_at)})"
                                       for s in late) or "nobody"))
    return Absences(at=now_iso(), device_id=results.device_id, section=results.section,
                    session_id=results.session_id, session=results.name, date=date,
                    finalized_at=results.finalized_at, absent=absent, late=late, absent_count=len(absent),
                    late_count=len(late), subject=subject, text="\n".join(lines))


def _clock(at: str | None) -> str:
    """`HH:MM` of a wall-clock ISO time (already in the box's zone), `-` when the camera never saw them."""
    return at[11:16] if at and len(at) >= 16 else "-"
