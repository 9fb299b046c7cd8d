// GET /attendance-console/api/live?device=<box>: what the flow knows of one box, for the console's pages
// (polled once a second by each browser tab). Without ?device: the box the overview page shows.
const devices = global.get("attendance_devices", "memory") || {};
const names = Object.keys(devices).sort();
const asked = msg.req.query && typeof msg.req.query.device === "string" ? msg.req.query.device : null;
const selected = global.get("attendance_selected");
const device = asked && devices[asked] ? asked : (devices[selected] ? selected : (names[0] || asked || null));
const dev = device ? devices[device] : null;
const seq = (global.get("attendance_snapshot_seq", "memory") || {})[device] || 0;
msg.payload = {
    device: device,
    devices: names.map(d => ({device: d, availability: devices[d].availability})),
    availability: dev ? dev.availability : null,
    info: dev ? dev.info : null,
    state: dev ? dev.state : null,
    progress: dev ? dev.progress : null,
    roster: dev ? dev.roster : null,
    results: dev && dev.results ? {session_id: dev.results.session_id, name: dev.results.name,
                                   section: dev.results.section, status: dev.results.status,
                                   ended_at: dev.results.ended_at, record: dev.results.record,
                                   revision: dev.results.revision} : null,
    snapshot: seq,
    node_red: env.get("ATTENDANCE_CLIENT") || "node-red",
    now: new Date().toISOString(),
};
msg.headers = {"Cache-Control": "no-store"};
return msg;
