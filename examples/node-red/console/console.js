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
            return iso ? new Date(iso).toLocaleString([], {month: "short", day: "numeric", hour: "2-digit",
                                                           minute: "2-digit"}) : "–";
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

    // ---- uploads: kept here, not in the page, so they go on across page changes and the dashboard's reconnects
    const MAX_BYTES = 2 * 1024 * 1024 * 1024;  // the box's media.max_upload_bytes default: 2 GiB
    const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
    const U = {
        job: null,
        // unfinished uploads of this browser (localStorage): the same file dropped again resumes
        pending() {
            const all = JSON.parse(localStorage.getItem("attendance.uploads") || "{}");
            return Object.entries(all).map(([key, u]) => Object.assign({key: key}, u));
        },
        remember(key, value) {
            const all = JSON.parse(localStorage.getItem("attendance.uploads") || "{}");
            if (value) all[key] = value; else delete all[key];
            localStorage.setItem("attendance.uploads", JSON.stringify(all));
        },
        // checked here, before anything is sent: an MP4, not empty, at most 2 GB
        check(file) {
            if (!/\.mp4$/i.test(file.name) || (file.type && file.type !== "video/mp4")) {
                return `${file.name} is not an MP4 video.`;
            }
            if (file.size === 0) return `${file.name} is empty.`;
            if (file.size > MAX_BYTES) {
                return `${file.name} is ${C.bytes(file.size)}: at most 2 GB (${MAX_BYTES} bytes) can be uploaded.`;
            }
            return null;
        },
        boxName(name) {
            const stem = name.replace(/\.mp4$/i, "").replace(/[^A-Za-z0-9._ -]/g, "-").replace(/\.\.+/g, ".")
                .replace(/^[^A-Za-z0-9]+/, "").slice(0, 96);
            return (stem || "video") + ".mp4";
        },
        // what a page shows: a plain copy
        view() {
            const j = this.job;
            if (!j) return null;
            const s = j.samples;
            let speed = 0;
            if (s.length > 1 && s[s.length - 1][0] > s[0][0]) {
                speed = (s[s.length - 1][1] - s[0][1]) / ((s[s.length - 1][0] - s[0][0]) / 1000);
            }
            return {name: j.name, bytes: j.bytes, done: j.done, phase: j.phase, error: j.error, media: j.media,
                    running: j.running, speed: speed, device: j.device, resumed_from: j.resumed_from || 0};
        },
        async start(file) {
            if (this.job && this.job.running) return "an upload is running: cancel it first";
            const refusal = this.check(file);
            if (refusal) return refusal;
            const key = `${file.name}|${file.size}|${file.lastModified}`;
            const job = {file: file, key: key, name: this.boxName(file.name), bytes: file.size, done: 0, media: null,
                         phase: "", error: "", running: true, cancelled: false, controllers: new Set(), samples: [],
                         device: C.device};
            this.job = job;
            try {
                const known = this.pending().find((u) => u.key === key && u.device === job.device);
                const sha256 = known ? known.sha256 : await this.hash(job);
                this.remember(key, {name: job.name, bytes: job.bytes, sha256: sha256, device: job.device,
                                    at: new Date().toISOString()});
                job.phase = "asking the box";
                const st = await this.ask(job, "upload_begin", {name: job.name, bytes: job.bytes, sha256: sha256});
                job.chunk = st.chunk_bytes || 1048576;
                job.id = st.upload_id;
                job.resumed_from = st.received || 0;  // what the box already held (an earlier try of this file)
                await this.sendAll(job, st);
            } catch (err) {
                if (!job.cancelled) job.error = err.message;
            } finally {
                job.running = false;
            }
            return null;
        },
        cancel() {
            const job = this.job;
            if (!job || !job.running) return;
            job.cancelled = true;
            job.controllers.forEach((ctl) => ctl.abort());
            job.running = false;
            job.phase = "cancelled: drop the same file again to go on where it stopped";
        },
        async hash(job) {
            const sha = new Sha256();
            const step = 8 * 1024 * 1024;
            job.phase = "checking the file (SHA-256)";
            for (let at = 0; at < job.bytes; at += step) {
                if (job.cancelled) throw new Error("cancelled");
                sha.update(new Uint8Array(await job.file.slice(at, at + step).arrayBuffer()));
                job.done = Math.min(at + step, job.bytes);
            }
            job.done = 0;
            return sha.hex();
        },
        // the box's answer, or an Error with its text; a lost connection is tried again after a pause
        async ask(job, command, fields) {
            for (let wait = 1; ; wait = Math.min(wait * 2, 10)) {
                const r = await C.call(command, fields, job.device);
                if (r.status === "ok") return r.data;
                if (r.code !== 0 && r.code !== 504) throw new Error(`${r.code}: ${r.error}`);
                await this.retry(job, wait, r.error);
            }
        },
        async retry(job, seconds, why) {
            for (let s = seconds; s > 0; s--) {
                if (job.cancelled) throw new Error("cancelled");
                job.phase = `connection lost (${why}); trying again in ${s} s`;
                await sleep(1000);
            }
        },
        progress(job, received) {
            if (typeof received !== "number") return;
            job.done = Math.max(job.done, received);
            const now = Date.now();
            job.samples = job.samples.filter(([t]) => now - t < 5000).concat([[now, job.done]]);
        },
        async sendAll(job, st) {
            // until the box says complete: send what it misses, two pieces in flight
            for (;;) {
                if (job.cancelled) return;
                this.progress(job, st.received);
                if (st.state === "complete") {
                    job.media = st.media;
                    job.done = job.bytes;
                    job.phase = "done: the video is in the box's library";
                    this.remember(job.key, null);
                    return;
                }
                if (st.state === "failed") {
                    this.remember(job.key, null);
                    throw new Error(`the box refused the file: ${st.error}`);
                }
                const pieces = [];
                for (const [a, b] of st.missing || []) {
                    for (let at = a; at < b; at += job.chunk) pieces.push([at, Math.min(at + job.chunk, b)]);
                }
                if (pieces.length) {
                    job.phase = "uploading";
                    await Promise.all([0, 1].map(async () => {
                        while (pieces.length && !job.cancelled) {
                            const [a, b] = pieces.shift();
                            if (!(await this.put(job, a, b))) return;
                        }
                    }));
                } else {
                    job.phase = st.state === "verifying" ? "the box checks the file" : "waiting for the box";
                    await sleep(1000);
                }
                if (job.cancelled) return;
                st = await this.ask(job, "upload_status", {upload_id: job.id});
            }
        },
        // one piece; false when it was not confirmed (the caller asks upload_status and goes on from there)
        async put(job, a, b) {
            const ctl = new AbortController();
            job.controllers.add(ctl);
            try {
                const r = await fetch(`${base}/${encodeURIComponent(job.device)}/upload/${job.id}/${a}`, {
                    method: "PUT", body: job.file.slice(a, b), signal: ctl.signal,
                    headers: {"Content-Type": "application/octet-stream"}});
                const answer = await r.json().catch(() => ({}));
                if (r.status === 422 || r.status === 400) {
                    throw Object.assign(new Error(`the box refused a piece: ${answer.error}`), {final: true});
                }
                if (!r.ok) return false;
                this.progress(job, answer.received);
                if (job.phase !== "uploading") job.phase = "uploading";
                return r.status === 200;
            } catch (err) {
                if (job.cancelled || err.final) throw err;
                await this.retry(job, 2, err.message);
                return false;
            } finally {
                job.controllers.delete(ctl);
            }
        },
    };
    C.uploads = U;

    window.AttendanceConsole = C;
})();
