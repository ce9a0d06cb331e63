"""Dynamic weights for keepalived's ``misc_dynamic``: exit code = 2 + weight.

Sources: a plain integer, a percentage of ``--weight``, or a HAProxy
agent-check reply. A malformed value is a failure with a message, never a
silent default. Imported only by runs that read a weight.
"""

from kachecks.checks.result import L7RSP, L7STS
from kachecks.checks.verdict import clamp
from kachecks.errors import ProbeFailure


def parse_weight(text, base, source):
    """``"7"`` -> 7, ``"50%"`` -> base * 0.5 (rounded down), else ProbeFailure."""
    value = text.strip()
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if not 0 <= percent <= 100 or percent != percent:
                raise ValueError
            return clamp(base * percent / 100)
        number = int(value, 10)
    except ValueError:
        raise ProbeFailure(f"malformed weight {value!r} from {source}", "weight",
                           code=L7RSP) from None
    if number < 0:
        raise ProbeFailure(f"negative weight {number} from {source}", "weight", code=L7RSP)
    return clamp(number)


def parse_agent_reply(reply, base):
    """A HAProxy agent-check reply -> (weight, drain); a down state raises.

    The reply is a comma/space separated list: states ``up ready down
    fail stopped maint drain`` and an optional ``NN%``. Down states fail;
    ``drain`` and 0 % mean weight 0 but still healthy.
    """
    words = reply.strip().replace(",", " ").lower().split()
    if not words:
        raise ProbeFailure("empty agent reply", "agent", code=L7RSP)
    down = None
    drain = False
    weight = None
    for word in words:
        if word in ("down", "fail", "failed", "stopped", "maint"):
            down = word
        elif word == "drain":
            drain = True
        elif word in ("up", "ready"):
            pass
        elif word.endswith("%"):
            weight = parse_weight(word, base, "agent reply")
        else:
            raise ProbeFailure(f"malformed agent reply {reply.strip()!r}", "agent", code=L7RSP)
    if down:
        raise ProbeFailure(f"agent reports {down}", "agent", down, code=L7STS)
    if drain or weight == 0:
        return 0, True
    return (clamp(base) if weight is None else weight), False
