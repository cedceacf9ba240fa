"""The campaign file reference (``docs/campaigns.md``) and JSON Schema (``docs/campaign.schema.json``),
generated from the schema module, so the docs never drift from what ``validate`` accepts.

Regenerate with ``python -m engine.campaigns.reference docs``; a test fails when they differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from engine.campaigns.schema import campaign_json_schema

INTRO = """# Campaign file reference

Generated from `engine/campaigns/schema.py` by `python -m engine.campaigns.reference docs`; do not
edit by hand. The meaning of each field is in `../shared/design/CAMPAIGN_FORMAT.md`; editors can
validate campaign files with `docs/campaign.schema.json`. Durations are `30m`, `1h`, `2d`, `1w` or
ISO 8601 (`PT1H`); percentages are written `10%`; expressions use the Jinja2 expression syntax.
"""


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("oneOf", "anyOf"):
        if key in spec:
            kinds = [_type(option) for option in spec[key] if option.get("type") != "null"]
            return " or ".join(dict.fromkeys(kinds))
    if "const" in spec:
        return f"`{spec['const']}`"
    if "enum" in spec:
        return " \\| ".join(f"`{value}`" for value in spec["enum"])
    if spec.get("type") == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if spec.get("type") == "object":
        return f"mapping of {_type(spec.get('additionalProperties', {}) or {'type': 'value'})}"
    text = str(spec.get("type", "value"))
    if "description" in spec and spec["description"] == "Jinja2 expression":
        return "expression"
    if "examples" in spec:
        text += " (e.g. " + ", ".join(f"`{e}`" for e in spec["examples"]) + ")"
    return text


def _section(name: str, spec: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    if spec.get("description"):
        lines += [" ".join(spec["description"].split()), ""]
    if "enum" in spec:
        return [*lines, "One of " + _type(spec) + ".", ""]
    required = set(spec.get("required", ()))
    lines += ["| field | type | required | default |", "| --- | --- | --- | --- |"]
    for field, prop in spec.get("properties", {}).items():
        default = "" if field in required else json.dumps(prop.get("default"))
        lines.append(
            f"| `{field}` | {_type(prop)} | {'yes' if field in required else 'no'} | {default} |"
        )
    return [*lines, ""]


def reference_markdown() -> str:
    """The campaign reference as markdown."""
    schema = campaign_json_schema()
    lines = [INTRO, *_section("Campaign", schema)]
    for name, spec in sorted(schema.get("$defs", {}).items()):
        lines += _section(name, spec)
    return "\n".join(lines).rstrip() + "\n"


def schema_json() -> str:
    """The JSON Schema of a campaign file, pretty-printed."""
    return json.dumps(campaign_json_schema(), indent=2, sort_keys=True) + "\n"


def write(folder: Path) -> None:
    """Write ``campaigns.md`` and ``campaign.schema.json`` into ``folder``."""
    (folder / "campaigns.md").write_text(reference_markdown())
    (folder / "campaign.schema.json").write_text(schema_json())


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
