// Headless Chromium screenshot of a page that renders after load (Dashboard 2 draws over a websocket, so
// chromium's own --screenshot fires too early): runs the steps in order, then saves a PNG.
// Usage: node scripts/screenshot.js URL OUT.png WIDTHxHEIGHT TIMEOUT_S [STEP ...]
// A step is `click:LABEL` (press the button labelled LABEL, once it is there) or a text to wait for;
// `done: STEP` is printed after each.
// Needs `chromium` and the `ws` module (NODE_PATH=.cache/node-red/node_modules, installed by node-red.sh).
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const WebSocket = require("ws");

const [url, out, size, timeoutS, ...steps] = process.argv.slice(2);
const [width, height] = (size || "1400x1000").split("x").map(Number);
let current = null;
const deadline = Date.now() + 1000 * Number(timeoutS || 60);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "chromium-"));
const browser = spawn(process.env.CHROMIUM || "chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
    "--remote-debugging-port=0", `--user-data-dir=${profile}`, `--window-size=${width},${height}`, "about:blank",
], { stdio: ["ignore", "ignore", "pipe"], detached: true });  // its own process group: ended as a whole

let ending = false;
let closeBrowser = null;  // Browser.close over the DevTools connection, once there is one
function end(code, message) {
    if (ending) return;
    ending = true;
    if (message) console.error(`screenshot.js: ${message}`);
    const cleanUp = () => {
        try { process.kill(-browser.pid, "SIGKILL"); } catch (err) { /* the group is gone already */ }
        for (let i = 0; ; i++) {  // children of chromium may still be writing into the profile for a moment
            try {
                fs.rmSync(profile, { recursive: true, force: true });
                break;
            } catch (err) {
                if (i >= 50) { console.error(`screenshot.js: could not remove ${profile}: ${err}`); break; }
                Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
            }
        }
        process.exit(code);
    };
    if (browser.exitCode !== null || browser.signalCode !== null) {
        cleanUp();
        return;
    }
    browser.removeAllListeners("exit");
    browser.once("exit", cleanUp);
    if (closeBrowser) {
        closeBrowser();
        setTimeout(() => { try { process.kill(-browser.pid, "SIGKILL"); } catch (err) { /* gone */ } }, 5000);
    } else {
        process.kill(-browser.pid, "SIGKILL");
    }
}
const fail = (message) => end(1, message);
setInterval(() => { if (Date.now() > deadline) fail(`timed out at step ${JSON.stringify(current)}`); }, 500);
browser.on("exit", (code) => fail(`chromium exited (${code})`));

let stderr = "";
browser.stderr.on("data", (chunk) => {
    stderr += chunk;
    const m = stderr.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m && !browser.connected_) {
        browser.connected_ = true;
        run(m[1]).catch((err) => fail(err.stack || String(err)));
    }
});

async function run(endpoint) {
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
    let next = 0;
    const waiting = new Map();
    ws.on("message", (data) => {
        const msg = JSON.parse(data);
        if (msg.id && waiting.has(msg.id)) {
            const { resolve, reject } = waiting.get(msg.id);
            waiting.delete(msg.id);
            msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
        }
    });
    const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
        const id = ++next;
        waiting.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params, sessionId }));
    });
    closeBrowser = () => { send("Browser.close").catch(() => {}); };
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
    await send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false }, sessionId);
    await send("Page.enable", {}, sessionId);
    await send("Page.navigate", { url }, sessionId);
    const shows = (text) => `(document.body ? document.body.innerText : "").includes(${JSON.stringify(text)})`;
    const press = (label) => `(() => { const b = [...document.querySelectorAll("button")]
        .find((e) => e.innerText.trim() === ${JSON.stringify(label)}); if (b) { b.click(); } return !!b; })()`;
    for (const step of steps) {
        current = step;
        const expression = step.startsWith("click:") ? press(step.slice(6)) : shows(step);
        for (;;) {
            const { result } = await send("Runtime.evaluate", { expression, returnByValue: true }, sessionId);
            if (result.value === true) break;
            await new Promise((r) => setTimeout(r, 250));
        }
        process.stdout.write(`done: ${step}\n`);  // a caller may wait for a step before acting
    }
    await new Promise((r) => setTimeout(r, 1000));  // images and gauges finish drawing
    const { data } = await send("Page.captureScreenshot", { format: "png" }, sessionId);
    fs.writeFileSync(out, Buffer.from(data, "base64"));
    console.log(out);
    end(0);
}
