"""Declarative command-line options for the forked executables.

The check executables and ``kachecks genhash`` are started by keepalived
every few seconds, so they cannot afford click or argparse at start-up.
This module parses getopt_long style (``-t5``, ``-t 5``, ``--timeout=5``,
``--timeout 5``, bundled flags ``-vS``, ``--`` ends options) from a table of
``Opt`` and renders ``--help`` from the same table: one definition, no drift.
Error texts follow keepalived's genhash (``Unknown option -x``,
``Missing parameter for option -t``, ``Unexpected argument(s): a b``).
"""

from kachecks.errors import UsageError

FLAG = "flag"  # no argument; True when present
VALUE = "value"  # one argument; the last occurrence wins (getopt behaviour)
MULTI = "multi"  # one argument; every occurrence is kept, in order


class Opt:
    """One option: its spellings, its kind, how to convert its argument.

    ``aliases``: more one-letter spellings (another tool's: check_http's ``-H``).
    """

    __slots__ = ("dest", "short", "long", "kind", "metavar", "help", "default", "convert", "section",
                 "aliases")

    def __init__(self, dest, short=None, long=None, kind=VALUE, metavar="VALUE",
                 help="", default=None, convert=None, section="Options", aliases=""):
        self.dest = dest
        self.short = short
        self.aliases = aliases
        self.long = long
        self.kind = kind
        self.metavar = metavar
        self.help = help
        self.default = [] if kind == MULTI and default is None else default
        if kind == FLAG and default is None:
            self.default = False
        self.convert = convert
        self.section = section

    def spelling(self):
        names = [f"-{letter}" for letter in (self.short or "") + self.aliases]
        if self.long:
            names.append(f"--{self.long}")
        text = ", ".join(names)
        return text if self.kind == FLAG else f"{text} {self.metavar}"


class Namespace:
    """Parsed options as attributes; ``args`` holds the non-option arguments."""

    def __init__(self, values, args):
        self.__dict__.update(values)
        self.args = args

    def __repr__(self):
        return f"Namespace({self.__dict__!r})"


def parse(opts, argv, positionals=0):
    """Parse ``argv`` (without the program name) against ``opts``.

    ``positionals`` is how many non-option arguments are allowed (-1: any).
    Raises UsageError with a one-line message.
    """
    by_short = None  # built at the first short option: keepalived lines mostly spell long ones
    by_long = {o.long: o for o in opts if o.long}
    values = {o.dest: (list(o.default) if o.kind == MULTI else o.default) for o in opts}
    args = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args.extend(argv[i:])
            break
        if word.startswith("--"):
            name, eq, inline = word[2:].partition("=")
            opt = by_long.get(name)
            if opt is None:
                raise UsageError(f"Unknown option --{name}")
            if opt.kind == FLAG:
                if eq:
                    raise UsageError(f"Option --{name} takes no argument")
                _store(opt, True, values, f"--{name}")
                continue
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"Missing parameter for option --{name}")
                inline = argv[i]
                i += 1
            _store(opt, inline, values, f"--{name}")
        elif word.startswith("-") and word != "-":
            if by_short is None:
                by_short = {letter: o for o in opts for letter in (o.short or "") + o.aliases}
            j = 1
            while j < len(word):
                letter = word[j]
                j += 1
                opt = by_short.get(letter)
                if opt is None:
                    raise UsageError(f"Unknown option -{letter}")
                if opt.kind == FLAG:
                    _store(opt, True, values, f"-{letter}")
                    continue
                if j < len(word):
                    value = word[j:]
                elif i < len(argv):
                    value = argv[i]
                    i += 1
                else:
                    raise UsageError(f"Missing parameter for option -{letter}")
                _store(opt, value, values, f"-{letter}")
                break
        else:
            args.append(word)
    if positionals >= 0 and len(args) > positionals:
        extra = args[positionals:]
        raise UsageError(f"Unexpected argument(s): {' '.join(extra)}")
    return Namespace(values, args)


def _store(opt, raw, values, flag):
    value = raw
    if opt.convert is not None and opt.kind != FLAG:
        try:
            value = opt.convert(raw)
        except UsageError:
            raise
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{flag}: {exc}") from None
    if opt.kind == MULTI:
        values[opt.dest].append(value)
    else:
        values[opt.dest] = value


# -- number converters ---------------------------------------------------------
# What a converter accepts is what the program can use: a timeout no socket or
# timer takes (1e10, inf, nan) is a usage error here, not an OverflowError later.

MIN_SECONDS = 0.001
MAX_SECONDS = 86400  # a day: longer than any check or fetch could mean to wait
MAX_FWMARK = 0xFFFFFFFF  # SO_MARK is 32 bits


def seconds(text):
    """A number of seconds from MIN_SECONDS to MAX_SECONDS (``2``, ``0.5``, ``1e-1``)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not MIN_SECONDS <= value <= MAX_SECONDS:  # nan fails both
        raise ValueError(f"expected a positive number of seconds, {MIN_SECONDS:g} to"
                         f" {MAX_SECONDS}, got {text!r}")
    return value


def decimal(text):
    """An int from ASCII decimal digits with an optional sign, like strtol (not ``1_000``)."""
    body = text.strip()
    digits = body[1:] if body[:1] in "+-" else body
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected an integer, got {text!r}")
    return int(body)


def integer(low, high):
    """A converter: a decimal integer from ``low`` to ``high``."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer from {low}")

    def convert(text):
        value = decimal(text)
        if not low <= value <= high:
            raise ValueError(f"expected {kind} up to {high}, got {text!r}")
        return value

    return convert


def render_help(usage, description, opts, epilog=""):
    """``--help`` text: usage, description, options grouped by section, epilog."""
    lines = [f"Usage: {usage}", ""]
    if description:
        lines += [description.rstrip(), ""]
    sections = []
    for o in opts:
        if o.section not in sections:
            sections.append(o.section)
    width = min(34, max(len(o.spelling()) for o in opts) + 2)
    for section in sections:
        lines.append(f"{section}:")
        for o in opts:
            if o.section != section:
                continue
            spelled = o.spelling()
            text = o.help
            if o.default not in (None, False, []) and "default" not in text:
                text += f" (default {o.default})"
            if len(spelled) + 2 > width:
                lines.append(f"  {spelled}")
                lines.append(f"  {'':{width}}{text}")
            else:
                lines.append(f"  {spelled:{width}}{text}")
        lines.append("")
    if epilog:
        lines.append(epilog.rstrip())
        lines.append("")
    return "\n".join(lines)
