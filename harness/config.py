"""kachecks.toml text from a dict of sections, for the tests and the lab."""

import re


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


def toml_text(sections):
    """``{"smtp": {"port": 25}}`` -> ``[smtp]\\nport = 25\\n``; a list of tables is an array
    of tables: ``{"check": [{"name": "web1"}]}`` -> ``[[check]]\\nname = "web1"\\n``."""
    out = []
    for section, values in sections.items():
        for table in values if isinstance(values, list) else [values]:
            out.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
            out.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
            out.append("")
    return "\n".join(out)
