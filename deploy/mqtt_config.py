"""install.sh's helper: read or set one key of the [mqtt] table of the daemon's TOML config, keeping the file's
comments and layout (the system python3 >= 3.11 reads it with tomllib; no third-party package needed).

    python3 mqtt_config.py get CONFIG KEY          prints the value ("" when the key is absent)
    python3 mqtt_config.py set CONFIG KEY VALUE    sets it: replaces the key's line or its commented-out
                                                   template line ("# key = ..."), else adds it under [mqtt]
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

TABLE = "mqtt"


def get(path: Path, key: str) -> str:
    value = tomllib.loads(path.read_text()).get(TABLE, {}).get(key, "")
    return str(value)


def set_key(path: Path, key: str, value: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    new_line = f"{key} = {json.dumps(value)}\n"  # a JSON string is a valid TOML basic string
    header = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
    active = re.compile(rf"^\s*{re.escape(key)}\s*=")
    commented = re.compile(rf"^\s*#\s*{re.escape(key)}\s*=")
    table: str | None = None
    header_at: int | None = None
    template_at: int | None = None
    for i, line in enumerate(lines):
        m = header.match(line)
        if m:
            table = m.group(1).strip()
            if table == TABLE:
                header_at = i
            continue
        if table != TABLE:
            continue
        if active.match(line):
            lines[i] = new_line
            break
        if commented.match(line) and template_at is None:
            template_at = i
    else:
        if template_at is not None:
            lines[template_at] = new_line
        elif header_at is not None:
            lines.insert(header_at + 1, new_line)
        else:
            lines.append(f"\n[{TABLE}]\n{new_line}")
    text = "".join(lines)
    if tomllib.loads(text).get(TABLE, {}).get(key) != value:  # never write a config the daemon cannot read
        raise SystemExit(f"could not set [{TABLE}] {key} in {path}")
    path.write_text(text)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "get":
        print(get(Path(argv[1]), argv[2]))
        return 0
    if len(argv) == 4 and argv[0] == "set":
        set_key(Path(argv[1]), argv[2], argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
