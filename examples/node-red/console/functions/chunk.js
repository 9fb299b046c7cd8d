// Uploads from the browser, one piece at a time, with bounded memory:
// PUT /attendance-console/api/<box>/upload/<upload_id>/<offset> (raw body, at most chunk_bytes) is published as
// one MQTT chunk on attendance/<box>/upload/<upload_id>/<offset> (QoS 1). The box's status messages
// (attendance/<box>/upload/<id>/status, about 4 a second) say which bytes it holds durably (`missing`); a piece is
// outstanding until it is no longer missing. A PUT is answered only while the outstanding bytes of its upload
// are at most WINDOW: so Node-RED holds at most about WINDOW bytes of an upload (in the MQTT client's queue)
// and the box's chunk queue (64 MiB) never overflows. Flow control from the browser to the box's disk.
// Output 1: the chunk to publish; output 2: the HTTP answer {received, state, missing, error}.
const WINDOW = 16 * 1024 * 1024;
const MAX_PIECE = 8 * 1024 * 1024;  // the box's largest chunk_bytes; it refuses what is above its own setting
const WAIT_MS = 30000;               // no word from the box: answer 202, the page asks upload_status
const base = env.get("ATTENDANCE_BASE_TOPIC") || "attendance";
const uploads = context.get("uploads", "memory") || {};
context.set("uploads", uploads, "memory");

function reply(w, code, st, error) {
    clearTimeout(w.timer);
    w.msg.statusCode = code;
    w.msg.payload = {received: st ? st.received : null, state: st ? st.state : null,
                     missing: st ? (st.missing || []).slice(0, 64) : null, error: error || (st && st.error) || null};
    w.msg.headers = {"Cache-Control": "no-store"};
    node.send([null, w.msg]);
}

function settle(id) {
    const up = uploads[id];
    const st = up.status;
    const done = st && ["verifying", "complete", "failed"].includes(st.state);
    if (st) {
        // a piece is outstanding while any of its bytes is still missing on the box
        const missing = st.missing || [];
        up.pieces = done ? [] : up.pieces.filter(p => missing.some(([a, b]) => a < p.end && p.offset < b));
    }
    const outstanding = up.pieces.reduce((sum, p) => sum + p.end - p.offset, 0);
    up.waiting = up.waiting.filter(w => {
        const refused = st && (st.refused || []).find(r => r.offset === String(w.offset));
        if (refused) {
            reply(w, 422, st, refused.error);
            return false;
        }
        if (done || outstanding <= WINDOW) {
            reply(w, 200, st);
            return false;
        }
        return true;
    });
    if (done && !up.waiting.length) {
        setTimeout(() => { if (uploads[id] && !uploads[id].waiting.length) delete uploads[id]; }, 60000);
    }
}

const parts = (msg.topic || "").split("/");
if (!msg.req) {
    // a status message of the box: what it holds durably
    const id = parts.length === 5 && parts[2] === "upload" && parts[4] === "status" ? parts[3] : null;
    if (id && uploads[id] && msg.payload && typeof msg.payload === "object") {
        uploads[id].status = msg.payload;
        settle(id);
    }
    return null;
}

const {device, upload_id: id, offset: offsetText} = msg.req.params;
const body = msg.payload;
const fail = (code, error) => { msg.statusCode = code; msg.payload = {error: error}; return [null, msg]; };
if (!/^[^/+#\u0000]{1,256}$/.test(device) || !/^[A-Za-z0-9_-]{1,64}$/.test(id) || !/^\d{1,15}$/.test(offsetText)) {
    return fail(400, "device, upload id or offset is not valid");
}
if (!Buffer.isBuffer(body) || body.length === 0 || body.length > MAX_PIECE) {
    return fail(400, "send the piece raw (application/octet-stream), 1 byte to chunk_bytes long");
}
const offset = Number(offsetText);
const up = uploads[id] || (uploads[id] = {device: device, status: null, pieces: [], waiting: []});
up.pieces = up.pieces.filter(p => p.offset !== offset);  // a piece sent again
up.pieces.push({offset: offset, end: offset + body.length});
const w = {msg: msg, offset: offset};
w.timer = setTimeout(() => {
    up.waiting = up.waiting.filter(x => x !== w);
    reply(w, 202, up.status, "the box has not confirmed the pieces before this one yet: ask upload_status");
}, WAIT_MS);
up.waiting.push(w);
const chunk = {topic: `${base}/${device}/upload/${id}/${offset}`, payload: body, qos: 1, retain: false};
msg.payload = null;  // the piece travels in `chunk` only
node.send([chunk, null]);
settle(id);
return null;
