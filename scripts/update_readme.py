"""Regenerates the README's settings table from the code (`make readme`); a test keeps them equal."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import SecretStr

from wipsvc.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def _default(value: object) -> str:
    if value is None or value == [] or value == "":
        return "—"
    if isinstance(value, SecretStr):
        return "—"
    return f"`{value}`"


def settings_table() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `WIPSVC_{name.upper()}` | {_default(default)} | {description} |")
    return "\n".join(lines)


def rendered(text: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    return pattern.sub(f"{START}\n{settings_table()}\n{END}", text)


def main() -> int:
    text = README.read_text()
    new = rendered(text)
    if "--check" in sys.argv:
        return 0 if new == text else 1
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
