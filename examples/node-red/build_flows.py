"""Builds the teacher's console into flows.json from its sources in console/ (Vue pages, the browser library,
the flow's function nodes), so they can be read and diffed as code: `python examples/node-red/build_flows.py`.

The console's nodes all have ids starting with `con_` and live on the tab "Attendance console"; the rest of
flows.json (the overview page, the command link, the HTTP API) is kept as it is. tests/test_node_red_console.py
checks that the committed flows.json is what this script builds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "console"
FLOWS = HERE / "flows.json"
TAB = "con_tab"
API = "/attendance-console/api"

# Each page: (id, title, path, icon). The order is the navigation's.
PAGES = [
    ("start", "Start", "/start", "play-circle-outline"),
    ("upload", "Upload", "/upload", "upload"),
    ("session", "Session", "/session", "video-outline"),
    ("results", "Results", "/results", "clipboard-check-outline"),
    ("unknown", "Unknown faces", "/unknown", "account-question-outline"),
    ("students", "Students", "/students", "account-group-outline"),
    ("history", "History", "/history", "history"),
]
BREAKPOINTS = [{"name": "Default", "px": 0, "cols": 3}, {"name": "Tablet", "px": 576, "cols": 6},
               {"name": "Small Desktop", "px": 768, "cols": 9}, {"name": "Desktop", "px": 1024, "cols": 12}]

# Loads console.js once per browser tab; every page's component gets lib(), c() and goto() from here.
LOADER = """\
        lib() {
            if (window.AttendanceConsole) return Promise.resolve(window.AttendanceConsole);
            if (!window.attendanceConsoleLoading) {
                window.attendanceConsoleLoading = new Promise((resolve, reject) => {
                    const s = document.createElement("script");
                    s.src = location.pathname.replace(/\\/dashboard(\\/.*)?$/, "") + "/attendance-console/console.js";
                    s.onload = () => resolve(window.AttendanceConsole);
                    s.onerror = () => { window.attendanceConsoleLoading = null; reject(new Error("console.js")); };
                    document.head.appendChild(s);
                });
            }
            return window.attendanceConsoleLoading;
        },
        c() {
            return window.AttendanceConsole;
        },
        goto(page, query) {
            this.c().go(this, page, query);
        },"""


def source(name: str) -> str:
    return (SOURCES / name).read_text()


def vue(name: str) -> str:
    text = source(name)
    marker = "        // @include loader"
    if marker not in text:
        raise SystemExit(f"{name}: no '{marker}' line in its methods")
    return text.replace(marker, LOADER)


def function(node_id: str, name: str, file: str, outputs: int, x: int, y: int,
             wires: list[list[str]]) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "z": TAB, "name": name, "func": source(f"functions/{file}"),
            "outputs": outputs, "timeout": 0, "noerr": 0, "initialize": "", "finalize": "", "libs": [],
            "x": x, "y": y, "wires": wires}


def http_in(node_id: str, method: str, url: str, x: int, y: int, target: str) -> dict[str, Any]:
    return {"id": node_id, "type": "http in", "z": TAB, "name": "", "url": url, "method": method, "upload": False,
            "skipBodyParsing": False, "swaggerDoc": "", "x": x, "y": y, "wires": [[target]]}


def http_out(node_id: str, x: int, y: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "http response", "z": TAB, "name": "", "statusCode": "",
            "headers": headers or {}, "x": x, "y": y, "wires": []}


def link_call(node_id: str, timeout: int, x: int, y: int, target: str) -> dict[str, Any]:
    return {"id": node_id, "type": "link call", "z": TAB, "name": "attendance command", "links": ["att_cmd_in"],
            "linkType": "static", "timeout": str(timeout), "x": x, "y": y, "wires": [[target]]}


def comment(node_id: str, text: str, x: int, y: int, info: str = "") -> dict[str, Any]:
    return {"id": node_id, "type": "comment", "z": TAB, "name": text, "info": info, "x": x, "y": y, "wires": []}


def template(node_id: str, name: str, fmt: str, scope: str, x: int, y: int, group: str = "",
             order: int = 1) -> dict[str, Any]:
    return {"id": node_id, "type": "ui-template", "z": TAB, "group": group, "page": "",
            "ui": "" if group else "att_ui_base", "name": name, "order": order, "width": 0, "height": 0,
            "head": "", "format": fmt, "storeOutMessages": False, "passthru": False, "resendOnRefresh": False,
            "templateScope": scope, "className": "", "x": x, "y": y, "wires": [[]]}


def console_nodes() -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [
        {"id": TAB, "type": "tab", "label": "Attendance console", "disabled": False,
         "info": "The teacher's console: the pages Start, Upload, Session, Results, Unknown faces, Students and "
                 "History, and the HTTP endpoints they call under /attendance-console/ (built from "
                 "examples/node-red/console/ by build_flows.py)."},
        comment("con_c_pages", "The console's pages (Vue components in ui-templates) and the busy overlay", 230, 40),
    ]
    for i, (key, title, path, icon) in enumerate(PAGES):
        nodes.append({"id": f"con_p_{key}", "type": "ui-page", "name": title, "ui": "att_ui_base", "path": path,
                      "icon": icon, "layout": "grid", "theme": "att_ui_theme", "breakpoints": BREAKPOINTS,
                      "order": i + 1, "className": "", "visible": "true", "disabled": "false"})
        nodes.append({"id": f"con_g_{key}", "type": "ui-group", "name": title, "page": f"con_p_{key}", "width": 12,
                      "height": 1, "order": 1, "showTitle": False, "className": "", "visible": "true",
                      "disabled": "false", "groupType": "default"})
        nodes.append(template(f"con_ui_{key}", f"{title} page", vue(f"{key}.vue"), "local", 150 + 220 * (i % 4),
                              80 + 40 * (i // 4), group=f"con_g_{key}"))
    nodes.append(template("con_ui_overlay", "busy overlay (every page)", vue("overlay.vue"), "widget:ui", 150, 160))
    nodes.append(template("con_ui_style", "console style", source("console.css"), "site:style", 370, 160))

    nodes += [
        comment("con_c_http", f"HTTP endpoints the pages call: {API}/...", 190, 220,
                "Unauthenticated unless settings.js sets httpNodeAuth, like the dashboard itself."),
        http_in("con_http_lib", "get", "/attendance-console/console.js", 210, 260, "con_lib"),
        {"id": "con_lib", "type": "template", "z": TAB, "name": "console.js (the pages' library)", "field": "payload",
         "fieldType": "msg", "format": "javascript", "syntax": "plain", "template": source("console.js"),
         "output": "str", "x": 500, "y": 260, "wires": [["con_js_out"]]},
        http_out("con_js_out", 760, 260, {"Content-Type": "application/javascript; charset=utf-8",
                                          "Cache-Control": "no-cache"}),
        http_in("con_http_live", "get", f"{API}/live", 180, 300, "con_live"),
        function("con_live", "live truth of a box", "live.js", 1, 450, 300, [["con_http_out"]]),
        http_in("con_http_snapshot", "get", f"{API}/:device/snapshot.jpg", 230, 340, "con_snapshot"),
        function("con_snapshot", "latest snapshot", "snapshot.js", 1, 480, 340, [["con_http_out"]]),
        http_in("con_http_cmd", "post", f"{API}/:device/:command", 220, 380, "con_cmd"),
        function("con_cmd", "allowed commands", "command.js", 2, 470, 380, [["con_call_cmd"], ["con_http_out"]]),
        link_call("con_call_cmd", 120, 680, 380, "con_cmd_answer"),
        function("con_cmd_answer", "the box's answer", "command_answer.js", 1, 900, 380, [["con_http_out"]]),
        http_out("con_http_out", 1100, 320),
        comment("con_c_upload", "Uploads: each PUT piece is one MQTT chunk, answered as the box makes it durable",
                300, 440),
        http_in("con_http_chunk", "put", f"{API}/:device/upload/:upload_id/:offset", 250, 480, "con_chunk"),
        {"id": "con_in_upload_status", "type": "mqtt in", "z": TAB, "name": "", "topic": "attendance/+/upload/+/status",
         "qos": "1", "datatype": "auto-detect", "broker": "att_broker", "nl": False, "rap": True, "rh": 0,
         "inputs": 0, "x": 210, "y": 520, "wires": [["con_chunk"]]},
        function("con_chunk", "piece → chunk (flow control)", "chunk.js", 2, 540, 500,
                 [["con_chunk_out"], ["con_upload_out"]]),
        {"id": "con_chunk_out", "type": "mqtt out", "z": TAB, "name": "upload chunk (never retained)", "topic": "",
         "qos": "1", "retain": "false", "respTopic": "", "contentType": "", "userProps": "", "correl": "",
         "expiry": "", "broker": "att_broker", "x": 820, "y": 480, "wires": []},
        http_out("con_upload_out", 790, 520),
        comment("con_c_files", "Downloads and the export's stream (HTTP Range), one 1 MiB piece at a time", 290, 580),
        http_in("con_http_file", "get", f"{API}/:device/file/:kind", 210, 620, "con_file"),
        function("con_file", "stream a file off the box", "file.js", 1, 480, 620, [["con_call_file"]]),
        link_call("con_call_file", 60, 720, 660, "con_file"),
    ]
    return nodes


def build(existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = [n for n in existing if not str(n.get("id", "")).startswith("con_")]
    return kept + console_nodes()


def render(nodes: list[dict[str, Any]]) -> str:
    return json.dumps(nodes, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    built = render(build(json.loads(FLOWS.read_text())))
    if "--check" in sys.argv[1:]:
        sys.exit(0 if FLOWS.read_text() == built else "flows.json is not current: run examples/node-red/build_flows.py")
    FLOWS.write_text(built)


if __name__ == "__main__":
    main()
