// The attendance console's browser side, shared by its pages (served by the flow at
// <httpNodeRoot>/attendance-console/console.js; each page's ui-template loads it once).
// window.AttendanceConsole: the tab's identity (the `client` of its starts), the box it works on, requests
// through the flow's HTTP endpoint, the live truth (polled once a second), file URLs, a streaming SHA-256.
(function () {
    "use strict";
    if (window.AttendanceConsole) {
        return;
    }
    const root = location.pathname.replace(/\/dashboard(\/.*)?$/, "");
    const base = root + "/attendance-console/api";
    const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    // The tab's id lives in sessionStorage: it survives reloads of this tab, and every other tab has its own.
    let tabId = sessionStorage.getItem("attendance.tab");
    if (!tabId) {
        tabId = hex(crypto.getRandomValues(new Uint8Array(5)));
        sessionStorage.setItem("attendance.tab", tabId);
    }

    const listeners = new Set();
    let timer = null;

    const C = {
        base: base,
        tabId: tabId,
        live: null,
        device: sessionStorage.getItem("attendance.device") || null,

        // ---- who this tab is -------------------------------------------------------------------------
        get name() {
            return localStorage.getItem("attendance.name") || "teacher";
        },
        setName(name) {
            const clean = String(name || "").replace(/[^\p{L}\p{N} ._'-]/gu, "").trim().slice(0, 60);
            localStorage.setItem("attendance.name", clean || "teacher");
        },
        // what a start sends as `client`; the box shows it as state.session.started_by
        get client() {
            return `${this.name} #${tabId}`;
        },
        isMine(startedBy) {
            return typeof startedBy === "string" && startedBy.endsWith(` #${tabId}`);
        },
        who(startedBy) {
            if (!startedBy) {
                return "someone who gave no name";
            }
            if (startedBy === "timetable") {
                return "the timetable";
            }
            const m = /^(.*) #([0-9a-f]{10})$/.exec(startedBy);
            if (m) {
                return `${m[1]} (${m[2] === tabId ? "this tab" : "another browser tab"})`;
            }
            return startedBy;
        },

        // ---- the box ---------------------------------------------------------------------------------
        setDevice(device) {
            this.device = device;
            sessionStorage.setItem("attendance.device", device);
            this.refresh();
        },
        // One request through the flow's command link: resolves to the box's Response (never throws).
        async call(command, fields, device) {
            const dev = device || this.device;
            if (!dev) {
                return {status: "error", code: 0, error: "no box known yet", data: {}};
            }
            try {
                const r = await fetch(`${base}/${encodeURIComponent(dev)}/${command}`, {
                    method: "POST", headers: {"Content-Type": "application/json"},
                    body: JSON.stringify(fields || {})});
                const answer = await r.json();
                return answer && typeof answer === "object" ? answer
                    : {status: "error", code: r.status, error: "no answer", data: {}};
            } catch (err) {
                return {status: "error", code: 0, error: `Node-RED did not answer (${err.message})`, data: {}};
            }
        },
        fileUrl(kind, params, device) {
            const q = new URLSearchParams();
            Object.entries(params || {}).forEach(([k, v]) => { if (v !== undefined && v !== null) q.set(k, v); });
            return `${base}/${encodeURIComponent(device || this.device || "")}/file/${kind}?${q}`;
        },
        snapshotUrl() {
            const n = this.live && this.live.snapshot;
            return n ? `${base}/${encodeURIComponent(this.device)}/snapshot.jpg?n=${n}` : null;
        },

        // ---- the live truth: one poll a second for every page of this tab ---------------------------
        watch(fn) {
            listeners.add(fn);
            if (this.live) {
                fn(this.live);
            }
            if (!timer) {
                this.refresh();
                timer = setInterval(() => this.refresh(), 1000);
            }
            return () => {
                listeners.delete(fn);
            };
        },
        async refresh() {
            try {
                const q = this.device ? `?device=${encodeURIComponent(this.device)}` : "";
                const r = await fetch(`${base}/live${q}`, {cache: "no-store"});
                const live = await r.json();
                if (!this.device && live.device) {
                    this.device = live.device;
                }
                live.offline = false;
                this.live = live;
            } catch (err) {
                this.live = Object.assign({}, this.live || {}, {offline: true});
            }
            listeners.forEach((fn) => { try { fn(this.live); } catch (err) { console.error(err); } });
        },

        // ---- small helpers ---------------------------------------------------------------------------
        go(vm, page, query) {
            const path = `/dashboard/${page}`;
            if (vm && vm.$router) {
                vm.$router.push({path: path, query: query || {}});
            } else {
                location.href = root + path + (query ? "?" + new URLSearchParams(query) : "");
            }
        },
        bytes(n) {
            if (typeof n !== "number") return "–";
            const units = ["B", "KB", "MB", "GB"];
            let i = 0;
            while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
            return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
        },
        duration(s) {
            if (typeof s !== "number" || !isFinite(s)) return "–";
            s = Math.max(0, Math.round(s));
            const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
            return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(sec).padStart(2, "0")}`;
        },
        clock(iso) {
            return iso ? new Date(iso).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}) : "–";
        },
        when(iso) {
            return iso ? new Date(iso).toLocaleString([], {dateStyle: "medium", timeStyle: "short"}) : "–";
        },
        describe(state) {
            const s = state && state.session;
            if (!s) return "nothing";
            if (s.purpose === "enrollment") return `enrolling ${s.name} from camera ${s.source.replace(/^camera:/, "")}`;
            const what = state.mode === "mp4" ? `video ${s.source}` : `camera ${s.source.replace(/^camera:/, "")}`;
            return `session “${s.name}” of ${s.section} (${what})`;
        },
        // Incremental SHA-256 (crypto.subtle hashes only whole buffers, and only on https or localhost).
        Sha256: Sha256,
        hex: hex,
    };

    const K = new Int32Array([
        0x428a2f98, 0x71374491, -0x4a3f0431, -0x164a245b, 0x3956c25b, 0x59f111f1, -0x6dc07d5c, -0x54e3a12b,
        -0x27f85568, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, -0x7f214e02, -0x6423f959, -0x3e640e8c,
        -0x1b64963f, -0x1041b87a, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        -0x67c1aeae, -0x57ce3993, -0x4ffcd838, -0x40a68039, -0x391ff40d, -0x2a586eb9, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, -0x7e3d36d2, -0x6d8dd37b,
        -0x5d40175f, -0x57e599b5, -0x3db47490, -0x3893ae5d, -0x2e6d17e7, -0x2966f9dc, -0xbf1ca7b, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, -0x7b3787ec, -0x7338fdf8, -0x6f410006, -0x5baf9315, -0x41065c09, -0x398e870e]);

    function Sha256() {
        this.h = new Int32Array([0x6a09e667, -0x4498517b, 0x3c6ef372, -0x5ab00ac6,
                                 0x510e527f, -0x64fa9774, 0x1f83d9ab, 0x5be0cd19]);
        this.w = new Int32Array(64);
        this.buf = new Uint8Array(64);
        this.bufLen = 0;
        this.total = 0;
    }
    Sha256.prototype.block = function (d, p) {
        const w = this.w, h = this.h;
        for (let t = 0; t < 16; t++, p += 4) {
            w[t] = (d[p] << 24) | (d[p + 1] << 16) | (d[p + 2] << 8) | d[p + 3];
        }
        for (let t = 16; t < 64; t++) {
            const a = w[t - 15], b = w[t - 2];
            const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
            const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
            w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
        }
        let a = h[0], b = h[1], c = h[2], e = h[4], f = h[5], g = h[6], dd = h[3], hh = h[7];
        for (let t = 0; t < 64; t++) {
            const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
            const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
            const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
            const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
            hh = g; g = f; f = e; e = (dd + t1) | 0; dd = c; c = b; b = a; a = (t1 + t2) | 0;
        }
        h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + dd) | 0;
        h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
    };
    Sha256.prototype.update = function (data) {
        let i = 0;
        const n = data.length;
        this.total += n;
        if (this.bufLen) {
            const take = Math.min(64 - this.bufLen, n);
            this.buf.set(data.subarray(0, take), this.bufLen);
            this.bufLen += take;
            i = take;
            if (this.bufLen < 64) return this;
            this.block(this.buf, 0);
            this.bufLen = 0;
        }
        for (; i + 64 <= n; i += 64) this.block(data, i);
        if (i < n) {
            this.buf.set(data.subarray(i), 0);
            this.bufLen = n - i;
        }
        return this;
    };
    Sha256.prototype.hex = function () {
        const bits = this.total * 8;
        const pad = new Uint8Array(((this.bufLen + 9 + 63) >> 6) * 64 - this.bufLen);
        pad[0] = 0x80;
        const v = new DataView(pad.buffer);
        v.setUint32(pad.length - 8, Math.floor(bits / 0x100000000));
        v.setUint32(pad.length - 4, bits >>> 0);
        const total = this.total;
        this.update(pad);
        this.total = total;
        const out = new Uint8Array(32);
        const ov = new DataView(out.buffer);
        for (let i = 0; i < 8; i++) ov.setInt32(i * 4, this.h[i]);
        return hex(out);
    };

    window.AttendanceConsole = C;
})();
