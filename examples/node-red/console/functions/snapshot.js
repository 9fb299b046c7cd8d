// GET /attendance-console/api/<box>/snapshot.jpg: the box's latest annotated frame (retained R/snapshot).
const snaps = global.get("attendance_snapshots", "memory") || {};
const url = snaps[msg.req.params.device];
if (!url) {
    msg.statusCode = 404;
    msg.payload = "no snapshot";
    return msg;
}
msg.payload = Buffer.from(url.slice(url.indexOf(",") + 1), "base64");
msg.headers = {"Content-Type": "image/jpeg", "Cache-Control": "no-store"};
return msg;
