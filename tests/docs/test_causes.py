"""The cause codes are documented where operators look them up: docs/reference.md's table
holds every code with the one-line meaning the code itself gives."""

import re
from pathlib import Path

from kachecks.checks.result import CODES, MEANINGS

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
ROW = re.compile(r"^\| `([A-Z0-9]+)` \| (.+) \|$")


def test_the_reference_lists_every_cause_code_with_its_meaning():
    section = REFERENCE.read_text().split("### Cause codes", 1)[1].split("\n#", 1)[0]
    rows = dict(ROW.match(line).groups() for line in section.splitlines() if ROW.match(line))
    assert list(rows) == list(CODES)
    assert rows == MEANINGS
