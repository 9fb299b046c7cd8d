import ast
import importlib
import inspect
import json
import re
import textwrap
import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel

from attendance_daemon.cli.asyncapi import EVENT_TYPES, build, render
from attendance_daemon.config import Config
from attendance_daemon.contract import api, ha_api, history_api, media_api, record_api
from attendance_daemon.daemon.handlers import COMMANDS
from attendance_daemon.mqtt import topics

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_committed_asyncapi_is_current() -> None:
    regenerate = "run: python -m attendance_daemon.cli.asyncapi > docs/asyncapi.json"
    assert (DOCS / "asyncapi.json").read_text() == render(), regenerate


def test_asyncapi_covers_the_contract() -> None:
    channels = build()["channels"]
    for leaf in (*topics.RETAINED, "events", "record"):
        assert f"{{base}}/{{device}}/{leaf}" in channels, leaf
    for command in ("start_webcam", "start_mp4", "pause", "resume", "stop", "status", "sections", "students",
                    "enroll", "remove_student", "sessions", "session", "report"):
        assert f"{{base}}/{{device}}/request/{command}" in channels


# ---- docs/mqtt-api.md is kept true to the code ------------------------------------------------------------
# The tables of docs/mqtt-api.md are parsed simply (one row per line, cells split on '|', names in backticks)
# and compared with the pydantic models, the command registry, the events the code publishes, the response
# codes it can produce and the limits it enforces. Adding a command, a field, an event or a limit without
# documenting it fails here.

API_DOC = DOCS / "mqtt-api.md"
ROOT = DOCS.parent
PACKAGE = ROOT / "attendance_daemon"
TICKED = re.compile(r"`([^`]+)`")


def _doc() -> str:
    return API_DOC.read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The text under `heading` (an exact heading line) up to the next heading of the same or a higher level."""
    lines = _doc().splitlines()
    assert heading in lines, f"docs/mqtt-api.md has no heading {heading!r}"
    level = len(heading.split(" ", 1)[0])
    out: list[str] = []
    for line in lines[lines.index(heading) + 1:]:
        m = re.match(r"(#+) ", line)
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    return "\n".join(out)


def _table(heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first Markdown table under `heading`."""
    block: list[str] = []
    for line in _section(heading).splitlines():
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    assert len(block) > 2, f"no table under {heading!r}"
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in block[2:]]


def _items(cell: str) -> dict[str, str]:
    """`a` (x, y), `b` -> {"a": "`a` (x, y)", "b": "`b`"}: the cell's items, split on commas outside brackets."""
    if cell in ("–", "-", ""):
        return {}
    items, depth, current = [], 0, ""
    for ch in cell:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    out = {}
    for item in items:
        m = re.match(r"`(\w+)`", item)
        assert m, f"request field item must start with a `field`: {item!r} in {cell!r}"
        out[m.group(1)] = item
    return out


def _command_rows() -> dict[str, list[str]]:
    rows = {}
    for row in _table("## Commands"):
        for name in TICKED.findall(row[0]):
            rows[name] = row
    return rows


def test_every_command_has_a_row_and_every_row_a_command() -> None:
    assert set(_command_rows()) == set(COMMANDS)


def test_request_fields_of_each_command_are_documented() -> None:
    rows = _command_rows()
    assert "`transaction`" in _section("## Requests")
    for name, (model, _fn) in COMMANDS.items():
        documented = _items(rows[name][1])
        fields = {f: info for f, info in model.model_fields.items() if f != "transaction"}
        assert set(documented) == set(fields), f"{name}: request fields in the doc vs {model.__name__}"
        for field, info in fields.items():
            marked = "(required" in documented[field]
            assert marked == info.is_required(), f"{name}.{field}: '(required' must match the model"


def _handler_data_keys(fn: object) -> set[str]:
    """String keys of dict literals and of `x["key"] = ...` in a handler: the keys of its ok `data`."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    keys.add(str(target.slice.value))
    return keys


def test_ok_data_of_each_command_is_documented() -> None:
    rows = _command_rows()
    for name, (_model, fn) in COMMANDS.items():
        cell = rows[name][2]
        returned = str(fn.__annotations__["return"])
        for model_name in re.findall(r"api\.(\w+)", returned):
            assert model_name in cell, f"{name}: ok data is {model_name}"
        keys = _handler_data_keys(fn)
        shapes = [t for t in TICKED.findall(cell) if t.startswith("{")]
        documented = {w for shape in shapes for w in re.findall(r"[a-z_][a-z0-9_]*", shape)} - {"true", "false"}
        assert documented == keys, f"{name}: keys of its ok data in the doc vs the handler"


def _payload_models() -> list[type[api.Payload]]:
    """Every daemon -> client payload model of the contract's modules (request models are covered by the command
    table)."""
    return [obj for module in (api, media_api, ha_api, history_api, record_api) for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, api.Payload) and obj is not api.Payload
            and not issubclass(obj, api.Request) and obj.__module__ == module.__name__]


def test_every_payload_model_has_a_field_table() -> None:
    for model in _payload_models():
        heading = f"### `{model.__name__}`"
        parent = model.__mro__[1]
        fields = dict(model.model_fields)
        if parent is not api.Payload:
            assert issubclass(parent, api.Payload)
            assert parent.__name__ in _section(heading), f"{model.__name__} must say it extends {parent.__name__}"
            fields = {f: i for f, i in fields.items() if f not in parent.model_fields}
        rows = {TICKED.findall(row[0])[0]: row for row in _table(heading)}
        assert set(rows) == set(fields), f"{model.__name__}: documented fields vs the model"
        for field, info in fields.items():
            kind = rows[field][1]
            ann = info.annotation
            if ann is Any:
                continue
            args = typing.get_args(ann)
            nullable = type(None) in args
            assert ("null" in kind) == nullable, f"{model.__name__}.{field}: 'null' in its type must match the model"
            for arg in (ann, *args):
                if typing.get_origin(arg) is Literal:
                    for value in typing.get_args(arg):
                        assert f"`{value}`" in kind, f"{model.__name__}.{field}: value {value!r} undocumented"


def _published_events() -> dict[str, set[str]]:
    """type -> field names of every `.event("type", ...)` / `.publish_event("type", ...)` call in the code."""
    events: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("event", "publish_event") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                events.setdefault(node.args[0].value, set()).update(k.arg for k in node.keywords if k.arg)
    return events


def test_asyncapi_names_every_event_the_code_publishes() -> None:
    assert set(EVENT_TYPES) == set(_published_events())
    events = build()["channels"]["{base}/{device}/events"]["subscribe"]["message"]["oneOf"]
    assert {m["name"] for m in events} == {"absences", "event"}


def test_every_event_type_and_field_is_documented() -> None:
    code = _published_events()
    assert code, "no event publication found in the code"
    doc = {TICKED.findall(row[0])[0]: set(TICKED.findall(row[1])) for row in _table("## Events")}
    assert set(doc) == set(code), "event types in the doc vs published by the code"
    for kind, fields in code.items():
        assert doc[kind] == fields, f"event {kind}: fields in the doc vs the code"
    envelope = _section("## Events")
    assert '"type"' in envelope and "`at`" in envelope


def test_every_response_code_is_documented() -> None:
    codes = {int(c) for c in re.findall(r"^\s+code = (\d+)", (PACKAGE / "common" / "errors.py").read_text(), re.M)}
    codes |= {int(c) for c in re.findall(r"code=(\d+)", (PACKAGE / "daemon" / "registry.py").read_text())}
    assert {200, 400, 500} <= codes
    documented = {int(row[0]) for row in _table("### Response codes")}
    assert documented == codes


def test_every_topic_is_documented_with_its_retain_flag() -> None:
    rows = {row[0].strip("`").removeprefix("R/").split("/")[0]: row for row in _table("## Topics")}
    assert set(rows) == set(topics.OWN_LEAVES)
    for leaf in topics.RETAINED:
        assert rows[leaf][2].startswith("yes"), leaf
    assert rows["events"][2] == rows["response"][2] == "no"
    assert rows["request"][2] == "must not be"


def test_every_limit_is_documented_with_its_value() -> None:
    where = {}
    for row in _table("## Limits"):
        for ref in TICKED.findall(row[2]):
            module, _, attr = ref.rpartition(".")
            value = getattr(importlib.import_module(f"attendance_daemon.{module}"), attr)
            if isinstance(value, int | str):
                assert str(value) in row[1], f"{ref} is {value!r}, the doc says {row[1]!r}"
            where[ref] = row
    for module in ("common.names", "common.errors", "mqtt.topics", "daemon.registry", "contract.ha_api"):
        mod = importlib.import_module(f"attendance_daemon.{module}")
        for attr in vars(mod):
            if attr.startswith("MAX_") or attr.endswith("_PATTERN"):
                assert f"{module}.{attr}" in where, f"limit {module}.{attr} is not in the doc's Limits table"
    limit = api.SessionsRequest.model_fields["limit"]
    bounds = {type(m).__name__: m for m in limit.metadata}
    assert f"{bounds['Ge'].ge} to {bounds['Le'].le}" in _section("## Limits")
    assert f"(default {limit.default})" in _command_rows()["sessions"][1]


def test_every_home_assistant_entity_and_control_is_documented() -> None:
    from attendance_daemon.daemon.homeassistant import ENTITIES

    rows = {(row[0].strip("`"), key) for row in _table("## Home Assistant discovery")
            for key in TICKED.findall(row[1])}
    assert rows == {(e.component, e.key) for e in ENTITIES}, "entities in the doc vs homeassistant.ENTITIES"
    controls = [TICKED.findall(row[0])[0] for row in _table("### Home Assistant controls")]
    assert controls == list(ha_api.HA_CONTROLS)
    channels = build()["channels"]
    assert {"{base}/{device}/ha/state", "{base}/{device}/ha/{control}/set"} <= set(channels)


def test_config_keys_named_in_the_doc_exist() -> None:
    tables = {name: info.annotation for name, info in Config.model_fields.items()}
    named = set(re.findall(r"`(paths|recognition|mqtt|daemon|attendance|homeassistant)\.(\w+)`", _doc()))
    assert named
    for table, key in named:
        model = tables[table]
        assert isinstance(model, type) and issubclass(model, BaseModel)
        assert key in model.model_fields, f"`{table}.{key}` is not a config key"


def test_readme_points_at_the_shipped_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme
    assert "docs/mqtt-api.md" in readme
    for page in DOCS.glob("*.md"):
        assert "../shared" not in page.read_text(encoding="utf-8"), page.name


# ---- README.md and docs/*.md: a short README that links every page, and links that lead somewhere ---------
# The README is what a newcomer reads first; everything else lives in docs/*.md. Links are read outside fenced
# code blocks and inline code; a #fragment must name a heading of its page by GitHub's rule (see _slug).

README = ROOT / "README.md"
README_MAX_LINES = 250
FRESH_MACHINE = "## Fresh machine: two commands"
FRESH_COMMANDS = ["bash scripts/demo.sh", "bash scripts/test.sh"]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")  # [text](target "title")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # https:, mailto: ...: not a file of this repository


def _prose(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (``` or ~~~)."""
    lines, fence = [], ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence:
            fence = "" if stripped.startswith(fence) else fence
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        else:
            lines.append(line)
    return lines


def _links(page: Path) -> list[str]:
    """Every link and image target of a Markdown page, in order (not those shown as code)."""
    lines = [re.sub(r"(`+)(.+?)\1", "code", line) for line in _prose(page.read_text(encoding="utf-8"))]
    return [m.group(1) for line in lines for m in LINK.finditer(line)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lowercase, punctuation dropped (hyphens and underscores kept),
    each space a hyphen. A link in the heading anchors on its text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """The anchors of a page: one per heading (a repeated slug gets -1, -2, ... as on GitHub), plus any
    explicit <a id="..."> or <a name="...">."""
    text = page.read_text(encoding="utf-8")
    anchors = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    seen: dict[str, int] = {}
    for line in _prose(text):
        m = re.match(r" {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if m:
            slug = _slug(m.group(1))
            anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _resolve(page: Path, target: str) -> tuple[Path, str] | None:
    """A relative link's file (made absolute) and fragment; None for a link that leaves the repository
    (a URL)."""
    if SCHEME.match(target):
        return None
    path, _, fragment = target.partition("#")
    return ((page.parent / unquote(path)).resolve() if path else page.resolve()), unquote(fragment)


def test_slug_follows_githubs_rule() -> None:
    assert _slug("Benchmarks (this 2-core machine, ratios against a baseline measured in the same run)") == \
        "benchmarks-this-2-core-machine-ratios-against-a-baseline-measured-in-the-same-run"
    assert _slug("The hub at scale: `python -m bench.hub_scale`") == "the-hub-at-scale-python--m-benchhub_scale"
    assert _slug("Many rooms: the hub") == "many-rooms-the-hub"
    assert _slug("`Info`") == "info"
    assert _slug("How recognition works (and why it is fast)") == "how-recognition-works-and-why-it-is-fast"


def test_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines: move detail into a page under docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert API_DOC in pages
    linked = {resolved[0] for target in _links(README) if (resolved := _resolve(README, target))}
    unlinked = [page.name for page in pages if page.resolve() not in linked]
    assert not unlinked, f"README.md links no docs/{unlinked}"


def test_every_relative_link_resolves() -> None:
    """In README.md and every docs/*.md: a relative link (or image) names a file or folder of the repository,
    and its #fragment a heading of that page."""
    broken: list[str] = []
    files = anchors = 0
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target in _links(page):
            resolved = _resolve(page, target)
            if resolved is None:
                continue
            path, fragment = resolved
            files += 1
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{where}: no file {path}")
            elif fragment:
                anchors += 1
                if path.suffix != ".md":
                    broken.append(f"{where}: a #fragment of a file that is not Markdown")
                elif fragment not in _anchors(path):
                    broken.append(f"{where}: {path.name} has no heading with the anchor #{fragment}")
    assert files and anchors, "no relative link or anchor found: the link pattern no longer matches"
    assert not broken, "\n".join(broken)


def test_readme_has_the_two_fresh_machine_commands() -> None:
    """The "Fresh machine" block is exactly the two commands, and CI (.ci/run) runs the README's test command."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert FRESH_MACHINE in lines, f"README.md has no heading {FRESH_MACHINE!r}"
    after = lines[lines.index(FRESH_MACHINE) + 1:]
    start = next(i for i, line in enumerate(after) if line.startswith("```"))
    end = next(i for i, line in enumerate(after) if i > start and line.startswith("```"))
    commands = [line.split("#", 1)[0].strip() for line in after[start + 1:end]]
    assert commands == FRESH_COMMANDS
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert f"exec {FRESH_COMMANDS[1]}" in ci, ".ci/run must run exactly the README's test command"


# ---- Many rooms: the hub's requests and roster message (docs/mqtt-api.md "Many rooms: the hub") -----------

HUB_TABLE = "### Hub commands"


def _hub_rows() -> dict[str, list[str]]:
    return {TICKED.findall(row[0])[0]: row for row in _table(HUB_TABLE)}


def test_asyncapi_covers_the_hub() -> None:
    from attendance_daemon.hub.requests import HUB_COMMANDS

    channels = build()["channels"]
    hub = {c.removeprefix("{base}/@hub/") for c in channels if c.startswith("{base}/@hub/")}
    assert hub == {"availability", "roster/{device}/{section}", "roster/{section}",
                   *(f"{kind}/{name}" for name in HUB_COMMANDS for kind in ("request", "response"))}
    for channel in ("{base}/@hub/roster/{device}/{section}", "{base}/@hub/roster/{section}"):
        roster = channels[channel]["subscribe"]["message"]["payload"]
        assert roster == {"$ref": "#/components/schemas/RosterMessage"}
    assert "{base}/{device}/bridge" in channels
    # a box has no psycopg (requirements-hub.txt): the generator and the hub's models import without it
    import subprocess
    import sys

    code = "import sys; sys.modules['psycopg'] = None; from attendance_daemon.cli.asyncapi import render; render()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_hub_command_has_a_row_with_its_request_fields() -> None:
    from attendance_daemon.hub.requests import HUB_COMMANDS

    rows = _hub_rows()
    assert set(rows) == set(HUB_COMMANDS)
    for name, (model, _fn) in HUB_COMMANDS.items():
        documented = _items(rows[name][1])
        fields = {f: info for f, info in model.model_fields.items() if f != "transaction"}
        assert set(documented) == set(fields), f"hub {name}: request fields in the doc vs {model.__name__}"
        for field, info in fields.items():
            item = documented[field]
            assert ("(required" in item) == info.is_required(), f"hub {name}.{field}: '(required' vs the model"
            if not info.is_required() and info.default is not None:
                spelt = (f"default {info.default}", f"default {json.dumps(info.default)}",
                         f"`{info.default}` (default)")
                assert any(s in item for s in spelt), \
                    f"hub {name}.{field}: its default {info.default!r} is not in the doc"
            for arg in (info.annotation, *typing.get_args(info.annotation)):
                if typing.get_origin(arg) is Literal:
                    for value in typing.get_args(arg):
                        assert f"`{value}`" in item, f"hub {name}.{field}: value {value!r} undocumented"
            bounds = {type(m).__name__: m for m in info.metadata}
            if "Ge" in bounds and "Le" in bounds:
                assert f"{bounds['Ge'].ge} to {bounds['Le'].le}" in item, f"hub {name}.{field}: its bounds"


def _returned_keys(fn: object, module: object, seen: set[str] | None = None) -> set[str]:
    """Keys of the dict literals that end up in what a hub handler returns: those in its `return` statements
    and in statements naming a variable it returns (`devices.append({...})`), following the functions of the
    same module it calls (`report_data`). A dict built for something else (the request sent to boxes) is not
    counted."""
    seen = seen if seen is not None else set()
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
    local = {n.id for a in ast.walk(tree) if isinstance(a, ast.Assign | ast.AnnAssign)
             for t in (a.targets if isinstance(a, ast.Assign) else [a.target]) for n in ast.walk(t)
             if isinstance(n, ast.Name)}
    returned = local & {n.id for r in ast.walk(tree) if isinstance(r, ast.Return) and r.value
                        for n in ast.walk(r.value) if isinstance(n, ast.Name)}
    keys: set[str] = set()
    for stmt in ast.walk(tree):
        if not isinstance(stmt, ast.Return | ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Expr):
            continue
        names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        if isinstance(stmt, ast.Return) or names & returned:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Dict):
                    keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        for call in ast.walk(stmt):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id not in seen:
                helper = getattr(module, call.func.id, None)
                if inspect.isfunction(helper) and helper.__module__ == getattr(module, "__name__", None):
                    seen.add(call.func.id)
                    keys |= _returned_keys(helper, module, seen)
    return keys


def test_every_key_of_a_hub_answer_is_documented() -> None:
    import sys

    from attendance_daemon.hub import requests

    rows = _hub_rows()
    for name, (_model, fn) in requests.HUB_COMMANDS.items():
        cell = rows[name][2]
        same = re.match(r"as `(\w+)`", cell)
        if same:
            cell = rows[same.group(1)][2]
        shapes = [re.sub(r"<[^>]*>", "", t) for t in TICKED.findall(cell) if t.startswith("{")]
        documented = {w for shape in shapes for w in re.findall(r"[a-z_][a-z0-9_]*", shape)} - {"or", "null"}
        keys = _returned_keys(fn, sys.modules[fn.__module__])  # requests.py or fleet_requests.py
        assert keys <= documented, f"hub {name}: keys of its ok data missing in the doc: {keys - documented}"


def test_roster_message_fields_are_documented() -> None:
    from attendance_daemon.contract.roster_message import ENCODING_DIM, RosterMessage, RosterStudentEntry

    text = _section("### Roster message")
    shape = TICKED.findall(text)[0]
    nested = re.search(r"students: \[\{(.*?)\}\]", shape)
    assert nested, f"the roster message's shape must show its students: {shape!r}"

    def keys(s: str) -> set[str]:
        return set(re.findall(r"([a-z_]+)(?=\s*[:,}]|\s*$)", s))

    assert keys(shape.replace(nested.group(0), "students")) == set(RosterMessage.model_fields)
    assert keys(nested.group(1)) == set(RosterStudentEntry.model_fields)
    assert f"[{ENCODING_DIM} numbers]" in nested.group(1)
    for field, info in RosterMessage.model_fields.items():
        if not info.is_required():
            assert f"`{field}`" in text and "present when" in text, f"roster {field}: say when it is present"


def test_hub_limits_are_in_the_limits_table() -> None:
    where = {ref for row in _table("## Limits") for ref in TICKED.findall(row[2])}
    for module in ("contract.roster_message", "contract.roster_signing", "hub.ingest", "hub.requests",
                   "hub.fleet_requests", "hub.record_requests"):
        mod = importlib.import_module(f"attendance_daemon.{module}")
        for attr in vars(mod):
            if attr.startswith("MAX_"):
                assert f"{module}.{attr}" in where, f"limit {module}.{attr} is not in the doc's Limits table"
