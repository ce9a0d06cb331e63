"""Regular expressions and a size limit over a streamed body, in bounded memory.

The body is never kept whole (memory stays flat whatever its size): each pattern
is searched in a sliding window that keeps the last WINDOW bytes, so a
match up to WINDOW bytes long is found wherever it lies in the body.
"""

from kachecks.checks.result import L7RSP
from kachecks.errors import ProbeFailure

WINDOW = 65536


class BodyWatch:
    """One body's watch: ``feed`` every chunk; then read ``regex_found`` and ``weight_text``.

    ``regex``/``weight_regex``: compiled bytes patterns (kachecks.checks.patterns)
    or None. A new BodyWatch per exchange: it keeps that body's state.
    """

    def __init__(self, regex=None, weight_regex=None, max_body=None):
        self.regex = regex
        self.weight_regex = weight_regex
        self.max_body = max_body
        self.window = bytearray()
        self.size = 0
        self.regex_found = False
        self.weight_text = None  # first capture group of --weight-regex, decoded
        self._weight_done = weight_regex is None

    def feed(self, data):
        self.size += len(data)
        if self.max_body is not None and self.size > self.max_body:
            raise ProbeFailure(f"body larger than --max-body {self.max_body} B", "read",
                               "max-body", code=L7RSP)
        regex_done = self.regex is None or self.regex_found
        if regex_done and self._weight_done:
            return
        self.window += data
        if not regex_done and self.regex.search(self.window):
            self.regex_found = True
        if not self._weight_done:
            found = self.weight_regex.search(self.window)
            if found:
                self._weight_done = True
                group = found.group(1)
                self.weight_text = None if group is None else bytes(group).decode("utf-8", "replace")
        if len(self.window) > WINDOW:
            del self.window[:-WINDOW]

