// POST /attendance-console/api/<box>/<command> (JSON body = the request's fields) from the console's pages.
// Only the commands the console uses pass (the console has no erasure, timetable or media deletion);
// the rest is refused here. Output 1: to the command link; output 2: a refusal, straight to the answer.
const ALLOWED = new Set(["status", "sections", "students", "media", "sessions", "session",
    "start_mp4", "start_webcam", "pause", "resume", "stop",
    "unknown_faces", "assign_unknown", "dismiss_unknown",
    "enroll", "enroll_capture", "remove_student", "student_photos",
    "student_history", "section_attendance", "upload_begin", "upload_status",
    "correct", "undo_correction", "corrections", "finalize", "reopen"]);
const command = msg.req.params.command;
if (!ALLOWED.has(command)) {
    msg.payload = {transaction: null, status: "error", code: 403, data: {},
                   error: `the console does not send '${command}'`};
    return [null, msg];
}
msg.device = msg.req.params.device;
msg.command = command;
msg.payload = msg.payload && typeof msg.payload === "object" && !Array.isArray(msg.payload) ? msg.payload : {};
// enroll_capture films for up to 60 s before it answers; the rest answer within the command link's 40 s
msg.timeout_s = command === "enroll_capture" ? 100 : undefined;
return [msg, null];
