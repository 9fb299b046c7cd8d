"""TrueType fonts for the PDF report, so any student's name prints (Latin with diacritics, Devanagari, CJK, ...).

The fonts come from Debian packages that `scripts/setup.sh` and `deploy/install.sh` install:
`fonts-dejavu-core` (the main face: Latin, Greek, Cyrillic), `fonts-noto-core` (Noto Sans for Devanagari,
Bengali, Tamil, Arabic, Hebrew, Thai, ... as fallbacks) and `fonts-droid-fallback` (CJK, one TrueType file:
fpdf2 cannot use the OpenType/TTC collections of `fonts-noto-cjk`). Only the fallbacks that the report's text
needs are loaded. Without the main face the report falls back to the PDF core font (Latin-1 only) and says so."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FONT_ROOT = Path(os.environ.get("ATTENDANCE_FONT_ROOT", "/usr/share/fonts/truetype"))
MAIN = ("dejavu/DejaVuSans.ttf", "noto/NotoSans-Regular.ttf")
MAIN_BOLD = ("dejavu/DejaVuSans-Bold.ttf", "noto/NotoSans-Bold.ttf")
# Tried first, in this order; then every other Noto Sans regular face (sorted), for the rarer scripts.
PREFERRED_FALLBACKS = ("noto/NotoSansDevanagari-Regular.ttf", "droid/DroidSansFallbackFull.ttf",
                       "noto/NotoSans-Regular.ttf")
MISSING_FONT_NOTE = ("No Unicode font was found (install fonts-dejavu-core, fonts-noto-core and fonts-droid-fallback; "
                     "scripts/setup.sh does): characters outside Latin-1 are shown as '?'.")


@dataclass(frozen=True)
class FontPlan:
    """The faces a report uses: None for `main` means the core Helvetica (Latin-1) fallback."""

    main: Path | None
    bold: Path | None
    fallbacks: list[Path] = field(default_factory=list)
    uncovered: str = ""  # characters no installed font has


@functools.lru_cache(maxsize=256)
def _charset(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    try:
        with TTFont(str(path), lazy=True) as font:
            return frozenset(font.getBestCmap() or {})
    except Exception as exc:  # noqa: BLE001 -- a broken font file is skipped, not fatal to the report
        log.warning("font %s is unreadable: %s", path, exc)
        return frozenset()


def _first(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _candidates(root: Path) -> list[Path]:
    preferred = [root / n for n in PREFERRED_FALLBACKS if (root / n).is_file()]
    rest = sorted(p for p in (root / "noto").glob("NotoSans*-Regular.ttf") if p not in preferred)
    return preferred + rest


def plan_fonts(text: str, root: Path = FONT_ROOT) -> FontPlan:
    """The main face plus the fewest fallbacks, in the order tried, that cover the characters of `text`."""
    main = _first(root, MAIN)
    if main is None:
        return FontPlan(None, None)
    bold = _first(root, MAIN_BOLD) or main
    need = {ord(c) for c in text if not c.isspace() and ord(c) >= 32} - _charset(main)
    fallbacks: list[Path] = []
    for path in _candidates(root) if need else []:
        covered = need & _charset(path)
        if covered and path != main:
            fallbacks.append(path)
            need -= covered
        if not need:
            break
    return FontPlan(main, bold, fallbacks, "".join(sorted(map(chr, need))))


def text_shaping_available() -> bool:
    """uharfbuzz (a pip wheel) lets fpdf2 shape complex scripts: Devanagari conjuncts and vowel signs."""
    try:
        import uharfbuzz  # noqa: F401
    except ImportError:
        return False
    return True
