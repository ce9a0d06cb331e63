"""-w/-c: monitoring-plugins threshold ranges, for --nagios.

Loaded only by runs that give -w or -c (kachecks.checks.options converts them):
every other forked check is spared the class (docs/performance.md).
"""


class Range:
    """A monitoring-plugins threshold range: ``10``, ``10:``, ``~:10``, ``10:20``, ``@10:20``.

    It alerts when the value lies outside start..end (inside, with ``@``); ``text``
    is what the user wrote, echoed in the performance data.
    """

    __slots__ = ("text", "start", "end", "inside")

    def __init__(self, text):
        body = text.strip()
        inside = body.startswith("@")
        body = body[1:] if inside else body
        low, _, high = body.rpartition(":") if ":" in body else ("0", "", body)
        try:
            start = float("-inf") if low == "~" else float(low or "0")
            end = float(high) if high else float("inf")
        except ValueError:
            raise ValueError(f"{text!r} is not a range (10, 10:, ~:10, 10:20, @10:20)") from None
        if not body or not (low or high) or start != start or end != end:
            raise ValueError(f"{text!r} is not a range (10, 10:, ~:10, 10:20, @10:20)")
        if start > end:
            raise ValueError(f"{text!r} is not a range: its start is above its end")
        for name, value in (("text", text), ("start", start), ("end", end), ("inside", inside)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("Range is immutable")

    def alerts(self, value):
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def describe(self):
        return f"{'inside' if self.inside else 'outside'} {self.text.lstrip('@')}"

    def __repr__(self):
        return f"Range({self.text!r})"
