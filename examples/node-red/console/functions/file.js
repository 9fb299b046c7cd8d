// GET /attendance-console/api/<box>/file/<kind>?... streams a file off the box: the annotated export (a <video>
// plays and seeks it: HTTP Range requests), reports, unknown-face crops, students' photos, library videos.
// Each piece (at most 1 MiB) is one `download` request through the command link; the next is asked only once
// the browser has taken the last one (res.write's backpressure), so Node-RED holds one piece at a time.
// Query: export and report: session_id (report: format csv|pdf); unknown_face: face_id; photo: section,
// student_id, photo_id; media: name. download=1 answers it as an attachment (the browser saves it).
// In: from the HTTP-in node (msg.req/msg.res), or back from the link call with a piece (msg._file is set).
// Output 1: a download request to the command link.
const PIECE = 1024 * 1024;
const KINDS = {export: ["session_id"], report: ["session_id", "format"], unknown_face: ["face_id"],
               photo: ["section", "student_id", "photo_id"], media: ["name"]};
const res = msg.res._res;
const gone = () => res.destroyed || res.writableEnded || (res.socket && res.socket.destroyed);

function request(f) {
    const length = Math.min(PIECE, (f.end === null ? Infinity : f.end + 1) - f.next);
    msg.device = f.device;
    msg.command = "download";
    msg.payload = Object.assign({}, f.fields, {offset: f.next, length: length === Infinity ? PIECE : length});
    return msg;
}

function refuse(code, text) {
    if (!res.headersSent) {
        res.status(code).set({"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}).end(text);
    } else {
        res.destroy();
    }
    return null;
}

if (!msg._file) {
    // a new request from the browser
    const kind = msg.req.params.kind;
    if (!KINDS[kind]) {
        return refuse(404, `no such kind of file: ${kind}`);
    }
    const fields = {kind: kind};
    for (const key of KINDS[kind]) {
        const v = msg.req.query[key];
        if (typeof v === "string" && v !== "") {
            fields[key] = ["face_id", "photo_id"].includes(key) && /^\d+$/.test(v) ? Number(v) : v;
        }
    }
    let start = 0;
    let end = null;
    const range = /^bytes=(\d*)-(\d*)$/.exec(msg.req.headers.range || "");
    if (range && range[1] !== "") {
        start = Number(range[1]);
        end = range[2] !== "" ? Number(range[2]) : null;
        if (end !== null && end < start) {
            return refuse(416, "bad range");
        }
    }
    msg._file = {device: msg.req.params.device, fields: fields, start: start, end: end, next: start,
                 ranged: !!(range && range[1] !== ""), attachment: msg.req.query.download === "1", sha256: null};
    return request(msg._file);
}

// a piece came back
const f = msg._file;
if (gone()) {
    return null;  // the browser went away (a <video> seeking drops its request): ask no more
}
const r = msg.payload || {};
if (r.status !== "ok") {
    return refuse(r.code === 404 ? 404 : (r.code === 400 && /offset/.test(r.error || "") ? 416 : 502),
                  `${r.code}: ${r.error || "no answer"}`);
}
const d = r.data;
if (f.sha256 === null) {
    f.sha256 = d.sha256;
    if (f.start >= d.bytes && d.bytes > 0) {
        res.status(416).set("Content-Range", `bytes */${d.bytes}`).end();
        return null;
    }
    f.end = f.end === null ? d.bytes - 1 : Math.min(f.end, d.bytes - 1);
    const headers = {"Content-Type": d.content_type || "application/octet-stream", "Accept-Ranges": "bytes",
                     "Content-Length": String(Math.max(0, f.end - f.start + 1)), "ETag": `"${d.sha256}"`,
                     "Cache-Control": "no-cache"};
    if (f.ranged) {
        headers["Content-Range"] = `bytes ${f.start}-${f.end}/${d.bytes}`;
    }
    if (f.attachment) {
        headers["Content-Disposition"] = `attachment; filename="${String(d.name).replace(/[^A-Za-z0-9._ -]/g, "_")}"`;
    }
    res.status(f.ranged ? 206 : 200).set(headers);
} else if (d.sha256 !== f.sha256) {
    res.destroy();  // the file changed on the box between two pieces
    return null;
}
const piece = Buffer.from(d.content || "", "base64");
const keep = piece.subarray(0, Math.max(0, f.end + 1 - d.offset));
f.next = d.offset + keep.length;
const last = d.eof || f.next > f.end || keep.length === 0;
const flowing = res.write(keep);
msg.payload = null;
if (last) {
    res.end();
    return null;
}
if (flowing) {
    return request(f);
}
const next = request(f);
const onDrain = () => { res.off("close", onClose); node.send(next); };
const onClose = () => res.off("drain", onDrain);
res.once("drain", onDrain);
res.once("close", onClose);
return null;
