"""Read keepalived.conf the way keepalived's own parser reads it.

The one reader of keepalived.conf: the doctor audits what it reads, the pair
watcher (kachecks.vrrp.instances, so kachecks-vrrp and the agent's [vrrp])
settles its vrrp_instances from it. It knows nothing of either.

Per physical line, as keepalived 2.2.7 to 2.4 do: end-of-line characters
dropped; leading blanks and comments removed (``#`` or ``!`` outside double
quotes; ``\\#`` and ``\\!`` are literal); ``@ID line`` kept only on the
director whose config id is ID (``@^ID``: everywhere else; the id is
``keepalived -i``, by default the host name up to its first dot);
``$NAME=value`` definitions (a trailing ``\\`` continues one on the next
line) and ``$NAME`` / ``${NAME}`` substitution, the built-in ``$_PWD``,
``$_INSTANCE``, ``$_HASH``, ``$_BANG`` and ``$_RANDOM`` included; then
``include PATTERN`` (glob with braces, relative to the directory of the
file that includes). A ``{`` or ``}`` ends a line, so
``real_server 192.168.8.101 80 {`` is a keyword line then an opening brace;
words are split on blanks and "double quotes" group them.

Every node keeps the file and physical line it came from (a substituted
line keeps the line of its ``$NAME``). What keepalived would skip or reject
while reading becomes a ``syntax`` Note (the doctor reports each as a
finding); what makes the file unreadable as a whole (missing, a directory,
binary data, an include loop) raises ReadError, one line.

Reading is bounded in time and memory whatever the files hold (definitions
that double, escapes, brace globs, huge or deeply nested includes): files
are streamed a line at a time, a line holds what keepalived's buffer holds,
and the bounds below (docs/doctor.md, "Bounds") end in a ``limit`` finding
at the line where one was reached, never in a traceback (a ``limit`` Note).
"""

import collections
import fnmatch
import io
import os
import re
import stat

from kachecks import files

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
ERROR = "error"  # how bad a Note is (the doctor's severities: kachecks.doctor.findings)
WARNING = "warning"

# keepalived's own bound (lib/parser.h MAXBUF 1024, less the NUL): a line as
# read, newline included, and a line as definitions expand it.
MAX_LINE = 1023
# The doctor's bounds, far above any real configuration (the 100,000-line
# one of the tests reads in well under a second).
MAX_SUBSTITUTIONS = 100  # $NAME substitutions in one line (keepalived loops for ever on $A=$A)
MAX_SUBSTITUTIONS_IN_ALL = 250_000
MAX_LINES = 500_000  # lines read, plus the lines multi-line definitions make
MAX_FILE_BYTES = 16 << 20  # one file, the main one or an included one
MAX_FILES = 10_000  # files read in all (a file included twice counts twice)
MAX_DEPTH = 32  # includes within includes
MAX_ALTERNATIVES = 256  # patterns one include's {a,b} braces make
MAX_GLOB_ENTRIES = 100_000  # directory entries include wildcards look at, in all

_SPECIAL = re.compile(r'[!#"\\]')
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f]")
_DEFINITION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=")
# $NAME ends at a blank, ',', ')' or the end of the line; ${NAME} may carry
# numeric parameters (${_RANDOM 1 10}).
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_]\w*)([ 0-9]*)\}|([A-Za-z_]\w*)(?=[ \t,)]|$))", re.ASCII)
_BRACE_OR_QUOTE = re.compile(r'[{}"]')
_WORD = re.compile(r'"([^"]*)"|([^ \t\f\n\r\v"]+)')
_GLOB_MAGIC = re.compile(r"[*?[{]")
_COMPONENT_MAGIC = re.compile(r"[*?[]")


class ReadError(Exception):
    """The configuration cannot be read at all."""

    def __init__(self, message, file=None, line=None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self):
        if self.file is None:
            return self.message
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class TooManyAlternatives(Exception):
    """An include's braces make more patterns than ``limit``."""


class _Stop(Exception):
    """A bound on the whole configuration was reached: reading ends here."""


class Node:
    """One keyword line: ``keyword``, its ``args``, the ``raw`` line, where it is.

    ``block`` is the list of nodes inside its ``{ … }``, or None without one;
    ``end`` the (file, line) of its closing brace. ``raw`` is the line as
    keepalived hands it to a keyword handler (scripts are split again from
    it, quotes and escapes honoured).
    """

    __slots__ = ("keyword", "args", "raw", "file", "line", "block", "end")

    def __init__(self, keyword, args, raw, file, line, block=None):
        self.keyword = keyword
        self.args = args
        self.raw = raw
        self.file = file
        self.line = line
        self.block = block
        self.end = None

    def __repr__(self):
        return f"Node({self.keyword!r}, {self.args!r}, {self.file}:{self.line})"

    def children(self, keyword):
        """The nodes called ``keyword`` in this node's block."""
        return [n for n in self.block or () if n.keyword == keyword]

    def child(self, keyword):
        """The last node called ``keyword`` in the block (keepalived: the last one wins)."""
        found = self.children(keyword)
        return found[-1] if found else None

    def value(self, keyword, default=None):
        """First argument of the last ``keyword`` line in the block."""
        node = self.child(keyword)
        return node.args[0] if node is not None and node.args else default

    def has(self, keyword):
        return any(n.keyword == keyword for n in self.block or ())


class Note(collections.namedtuple("Note", "file line severity code message")):
    """Something keepalived would skip or reject while reading (``code`` "syntax"), or a
    bound reached ("limit"), at ``file``:``line``; ``severity`` ERROR or WARNING."""

    __slots__ = ()


class Config:
    """A configuration read: top-level ``nodes``, the ``files`` read (in order).

    ``findings``: the Notes of the reading, in order. ``names`` maps the file
    names keepalived prints in its messages (an include as its glob matched
    it, relative to the including file) to ours.
    ``exceeded``: a bound was reached (a ``limit`` Note, or definitions
    that keepalived itself may expand for ever): part of the configuration
    is unread, and keepalived's own parser may not finish on it.
    """

    __slots__ = ("path", "nodes", "files", "findings", "config_id", "names", "exceeded",
                 "conditionals")

    def __init__(self, path, nodes, files, findings, config_id, names, exceeded=False,
                 conditionals=()):
        self.path = path
        self.nodes = nodes
        self.files = files
        self.findings = findings
        self.config_id = config_id
        self.names = names
        self.exceeded = exceeded
        self.conditionals = frozenset(conditionals)  # the IDs of the @ID lines met

    def blocks(self, keyword):
        return [n for n in self.nodes if n.keyword == keyword]


def default_config_id():
    """keepalived's default config id: the node name up to its first dot."""
    return os.uname().nodename.split(".", 1)[0]


def read(path, config_id=None, data=None, follow=None):
    """Read ``path`` and everything it includes; returns a Config or raises ReadError.

    For another director's file (``kachecks doctor --peer``): ``data`` is the
    content (bytes) when it came on standard input (``path`` then only names it), and
    ``follow(pattern)`` says why an include is not read here (its files are on
    the other director), or None to read it.
    """
    if config_id is None:
        config_id = default_config_id()
    reader = _Reader(config_id, follow)
    nodes = reader.build(reader.lines(path, data))
    return Config(path, nodes, reader.files, reader.findings, config_id, reader.names,
                  reader.exceeded, reader.conditionals)


class _Definition:
    __slots__ = ("value", "multiline", "params")

    def __init__(self, value, multiline=False, params=False):
        self.value = value  # str, or a function of (params, directory) for built-ins
        self.multiline = multiline
        self.params = params


def _random(params, directory):
    """``${_RANDOM [MIN [MAX]]}``: the doctor reads one value, MIN (default 0)."""
    numbers = params.split()
    return numbers[0] if numbers else "0"


def decomment(text):
    """keepalived's decomment(): (text without comment and outer blanks, unterminated quote?).

    As 2.2.7 and 2.3.3 read it, a trailing ``\\`` continues the line even
    after a comment. One pass over the special characters: time linear in
    the line, whatever its escapes.
    """
    text = text.lstrip(" \t")
    if _SPECIAL.search(text) is None:
        return text.rstrip(" \t"), False
    parts, kept, pos, stop = [], 0, 0, len(text)
    quote = cont = comment = False
    while (m := _SPECIAL.search(text, pos)) is not None:
        i = m.start()
        c = text[i]
        if c == "\\":
            if i + 1 == len(text):
                cont = True
                if not comment:
                    stop = i
                break
            if not quote and not comment and text[i + 1] in "#!":
                parts.append(text[kept:i])  # \# and \! stand for themselves
                kept = i + 1
            pos = i + 2
            continue
        if c == '"':
            if not comment:
                quote = not quote
        elif not quote and not comment:
            comment, stop = True, i  # the rest goes, but a trailing \ still continues
        pos = i + 1
    parts.append(text[kept:stop])
    out = "".join(parts).rstrip(" \t")
    return (out + "\\" if cont else out), quote


def words(text):
    """keepalived's word split: blanks separate, "…" groups (quotes dropped)."""
    if '"' not in text:
        return text.split() if text.isascii() else [w for w in re.split(r"[ \t\f\n\r\v]+", text) if w]
    if text.count('"') % 2:
        text = text[:text.rindex('"')]  # keepalived stops at the unmatched quote
    return [quoted if quoted or bare == "" else bare for quoted, bare in _WORD.findall(text)]


def pieces(text):
    """The lines keepalived makes of ``text``: a ``{`` or ``}`` outside quotes ends one."""
    out = []
    while text:
        if text[0] in "{}":
            out.append(text[0])
            text = text[1:].lstrip(" \t")
            continue
        cut = _first_brace(text)
        if cut is None:
            out.append(text)
            break
        out.append(text[:cut].rstrip(" \t"))
        text = text[cut:]
    return out


def _first_brace(text):
    if "{" not in text and "}" not in text:
        return None
    pos = 0
    while True:
        m = _BRACE_OR_QUOTE.search(text, pos)
        if m is None:
            return None
        if m.group() != '"':
            return m.start()
        close = text.find('"', m.end())
        if close < 0:
            return None
        pos = close + 1


def expand_braces(pattern, limit=MAX_ALTERNATIVES):
    """glob's GLOB_BRACE: ``a{b,c}d`` -> [abd, acd] (nested braces, ``\\`` escapes).

    TooManyAlternatives past ``limit`` patterns: ``{a,b}`` twenty times over
    is a million, and the work stops at the first ``limit + 1``.
    """
    out, todo = [], [pattern]
    while todo:
        text = todo.pop()
        group = _brace_group(text)
        if group is None:
            out.append(text)
            if len(out) > limit:
                raise TooManyAlternatives(limit)
            continue
        head, body, tail = group
        todo += reversed([head + alternative + tail for alternative in _split_alternatives(body)])
    return out


def _brace_group(pattern):
    """(head, body, tail) around the first top-level ``{…}``, or None."""
    depth = 0
    start = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                return pattern[:start], pattern[start + 1:i], pattern[i + 1:]
        i += 1
    return None


def _split_alternatives(body):
    parts, depth, start, i = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return parts


class _Reader:
    def __init__(self, config_id, follow=None):
        self.config_id = config_id
        self.follow = follow
        self.conditionals = set()
        self.findings = []
        self.files = []
        self.names = {}
        self.defs = {
            "_PWD": _Definition(lambda params, directory: directory),
            "_INSTANCE": _Definition(config_id or ""),
            "_RANDOM": _Definition(_random, params=True),
            "_HASH": _Definition("#"),
            "_BANG": _Definition("!"),
        }
        self.open_definition: Any = None  # (name, [lines]) while a `\` continues one
        self.stack = []  # real paths of the files being read, outermost first
        self.exceeded = False  # a bound was reached
        self.opened = 0  # files read
        self.lines_read = 0  # lines read or made by multi-line definitions
        self.substituted = 0  # $NAME substitutions
        self.glob_entries = 0  # directory entries include wildcards looked at

    def finding(self, file, line, message, severity=ERROR):
        self.findings.append(Note(file, line, severity, "syntax", message))

    def limit(self, file, line, message):
        """A bound reached: a ``limit`` Note; what lies past it is not audited."""
        self.exceeded = True
        self.findings.append(Note(file, line, ERROR, "limit", message))

    def count_lines(self, count, path, number):
        self.lines_read += count
        if self.lines_read > MAX_LINES:
            self.limit(path, number, f"more than {MAX_LINES:,} lines in all (with those"
                                     " definitions make): the doctor reads no further")
            raise _Stop

    # -- files -----------------------------------------------------------------

    def lines(self, path, data=None):
        """Every logical line of the configuration: (file, line number, text)."""
        if data is not None:
            self.names[path] = path
            try:
                yield from self._file(path, None, None, data)
            except _Stop:
                pass
            return
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ReadError(f"cannot read the configuration: {exc.strerror}", path) from None
        if stat.S_ISDIR(st.st_mode):
            raise ReadError("is a directory, not a configuration file", path)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError("is not a regular file", path)
        if st.st_mode & 0o111:
            self.finding(path, None, "keepalived refuses an executable configuration file"
                                     " (\"not a regular non-executable file\"): chmod a-x it")
        self.names[path] = path
        try:
            yield from self._file(path, None, None)
        except _Stop:
            return

    def _file(self, path, includer, include_line, data=None):
        real = os.path.realpath(path) if data is None else path
        if real in self.stack:
            chain = " -> ".join(os.path.basename(p) for p in [*self.stack[self.stack.index(real):], real])
            raise ReadError(f"include loop: {chain}", includer, include_line)
        # a bound met by an included file is reported where it is included
        where: tuple[str, int | None] = (path, None) if includer is None else (includer, include_line)
        if len(self.stack) >= MAX_DEPTH:
            self.limit(*where, f"{path}: includes nested more than {MAX_DEPTH} deep: not read")
            return
        if self.opened >= MAX_FILES:
            self.limit(*where, f"{path}: more than {MAX_FILES:,} files in all: the doctor reads"
                               " no further")
            raise _Stop
        try:  # opened without blocking: a FIFO swapped in since its stat would hang us
            f = os.fdopen(files.open_regular(path, "", None)[0], "rb") if data is None \
                else io.BytesIO(data)
        except files.UnusableFile as exc:
            if includer is None:
                raise ReadError(f"cannot read the configuration: {exc.detail}", path) from None
            self.finding(includer, include_line, f"cannot read included file {path}: {exc.detail}"
                                                 " (keepalived skips it)")
            return
        with f:
            size = os.fstat(f.fileno()).st_size if data is None else len(data)
            if size > MAX_FILE_BYTES:
                self.limit(*where, f"{path} is {_size_text(size)}: more than the doctor reads in"
                                   f" one file ({_size_text(MAX_FILE_BYTES)}); not audited")
                return
            self.opened += 1
            self.files.append(path)
            self.stack.append(real)
            try:
                yield from self._read(f, path, includer, include_line, where)
            finally:
                self.stack.pop()
        if self.open_definition is not None:
            self._close_definition()

    def _read(self, f, path, includer, include_line, where: tuple[str, int | None]):
        """The logical lines of an open file, one physical line in memory at a time."""
        directory = os.path.dirname(path)
        readline = f.readline
        number = 0
        cut = False  # the line read last went on past keepalived's buffer
        total = 0
        while True:
            # keepalived's fgets(): at most MAX_LINE bytes, the newline included
            raw = readline(MAX_LINE)
            if not raw:
                break
            total += len(raw)
            if total > MAX_FILE_BYTES:
                self.limit(*where, f"{path} grew past {_size_text(MAX_FILE_BYTES)} while it was"
                                   " read: the rest is not audited")
                return
            ended = raw[-1:] == b"\n"
            if ended:
                raw = raw[:-1]
            elif len(raw) < MAX_LINE:
                ended = True  # the end of the file
            if not cut:
                number += 1
                self.count_lines(1, path, number)
                if not ended:
                    self.finding(path, number, f"line longer than keepalived's {MAX_LINE}-byte"
                                               " buffer: keepalived up to 2.3 reads it cut into"
                                               f" {MAX_LINE}-byte pieces, each a line of its own"
                                               " (later releases skip it)")
            cut = not ended
            bad = _CONTROL.search(raw)
            if bad is not None:
                included = f" (included at {includer}:{include_line})" if includer else ""
                raise ReadError(f"binary data (byte 0x{raw[bad.start()]:02x}): not a keepalived"
                                f" configuration file{included}", path, number)
            text = raw.decode("utf-8", "surrogateescape")
            for logical in self._physical(text, path, number, directory):
                include = _include(logical)
                if include is None:
                    yield path, number, logical
                else:
                    yield from self._include(include, path, number, directory)

    def _include(self, include, path, number, directory):
        kind, pattern = include
        if not pattern:
            self.finding(path, number, f"{kind} without a file name")
            return
        if self.follow is not None:
            why = self.follow(pattern)
            if why:
                self.finding(path, number, f"{kind} {pattern}: {why}", WARNING)
                return
        wildcard = _GLOB_MAGIC.search(pattern) is not None
        try:
            alternatives = expand_braces(pattern)
        except TooManyAlternatives:
            self.limit(path, number, f"{kind} {pattern}: its braces make more than"
                                     f" {MAX_ALTERNATIVES} patterns: not read")
            return
        matches = []
        for alternative in alternatives:
            found = self._glob(alternative, directory)
            if found is None:
                self.limit(path, number, f"{kind} {pattern}: the wildcards looked at more than"
                                         f" {MAX_GLOB_ENTRIES:,} directory entries in all: not read")
                return
            matches += found
        if not matches:
            if not wildcard:
                self.finding(path, number, f"{kind} {pattern}: no such file (keepalived goes on"
                                           " without it)")
            elif kind in ("includew", "includea"):
                self.finding(path, number, f"{kind} {pattern}: no file matches")
            return
        for name in matches:
            shown = os.path.normpath(name if os.path.isabs(name) else os.path.join(directory, name))
            self.names.setdefault(name, shown)
            self.names.setdefault(shown, shown)
            try:
                st = os.stat(shown)
            except OSError as exc:
                self.finding(path, number, f"{kind}: {shown}: {exc.strerror} (keepalived skips it)")
                continue
            if stat.S_ISDIR(st.st_mode):
                self.finding(path, number, f"{kind}: {shown} is a directory (keepalived skips it)",
                             WARNING if wildcard else ERROR)
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o111:
                self.finding(path, number, f"{kind}: keepalived skips {shown}: not a regular"
                                           " non-executable file (chmod a-x it)")
                continue
            yield from self._file(shown, path, number)

    def _glob(self, pattern, directory):
        """Names matching ``pattern`` relative to ``directory``, sorted, as keepalived's glob()
        gives them; None once the wildcards have looked at MAX_GLOB_ENTRIES entries in all.

        Python's glob rules (``*`` skips dot files, ``[!…]``), walked here so
        that the walk itself is bounded: ``/*/*/*/*/*.conf`` would visit the
        whole file system.
        """
        if _GLOB_MAGIC.search(pattern) is None:
            full = pattern if os.path.isabs(pattern) or not directory else os.path.join(directory, pattern)
            return [pattern] if os.path.lexists(full) else []
        absolute = os.path.isabs(pattern)
        base = directory or "."
        parts = [part for part in pattern.split("/") if part]
        found = ["/" if absolute else ""]
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            following = []
            for prefix in found:
                here = prefix if absolute else os.path.join(base, prefix)
                if _COMPONENT_MAGIC.search(part) is None:
                    full = os.path.join(here, part)
                    if os.path.lexists(full) if last else os.path.isdir(full):
                        following.append(prefix + part)
                    continue
                try:
                    entries = os.scandir(here)
                except OSError:
                    continue
                with entries:
                    for entry in entries:
                        self.glob_entries += 1
                        if self.glob_entries > MAX_GLOB_ENTRIES:
                            return None
                        if entry.name.startswith(".") and not part.startswith("."):
                            continue
                        if fnmatch.fnmatchcase(entry.name, part) and (last or _is_dir(entry)):
                            following.append(prefix + entry.name)
            found = following if last else [name + "/" for name in following]
        return sorted(found)

    # -- lines -----------------------------------------------------------------

    def _physical(self, raw, path, number, directory):
        """The logical lines one physical line gives (none, one, or a multiline $NAME's)."""
        raw = raw.rstrip("\r")
        if self.open_definition is not None:
            self._continue_definition(raw)
            return ()
        if not raw:
            return ()
        text, unterminated = decomment(raw)
        if unterminated:
            self.finding(path, number, f"unterminated quote: {text}")
        if not text:
            return ()
        if text[0] not in "@$~" and "$" not in text:
            return (text,)  # the common case: nothing to expand
        return self._expand(text, path, number, directory)

    def _expand(self, text, path, number, directory):
        out = []
        pending = collections.deque([text])
        while pending:
            text = pending.popleft()
            allowed = MAX_SUBSTITUTIONS  # per line, as keepalived's buffer is per line
            unexpanded = None  # the line before its first substitution
            while True:
                if text.startswith("@"):
                    text = self._conditional(text)
                    if not text:
                        break
                if text.startswith("$") and self._define(text):
                    text = ""
                    break
                if text.startswith(("~SEQ", "~LST")):
                    self.finding(path, number, f"{text[:4]} lines are not expanded by kachecks"
                                               " doctor: what they generate is not audited", WARNING)
                    text = ""
                    break
                if text.startswith("~") or "$" not in text:
                    break
                if unexpanded is None:
                    unexpanded = text
                done = self._substitute(text, directory, allowed)
                if done is None:
                    break
                text, following, count, problem = done
                allowed -= count
                self.substituted += count
                if self.substituted > MAX_SUBSTITUTIONS_IN_ALL:
                    self.limit(path, number, f"more than {MAX_SUBSTITUTIONS_IN_ALL:,} $NAME"
                                             " substitutions in all: the doctor reads no further")
                    raise _Stop
                if problem is not None:
                    # keepalived loops for ever, or stops substituting midway and reads
                    # what is left, which may hold half-substituted ${NAME}s (2.2.7
                    # then loops on them): the doctor keeps the line as written, so
                    # that its braces still open and close blocks
                    self.exceeded = True
                    if problem == "loop":
                        why = ("definitions expand forever (a $NAME that refers to itself, or"
                               f" definitions that double?): more than {MAX_SUBSTITUTIONS}"
                               " substitutions in one line")
                    else:
                        why = (f"definitions make this line longer than keepalived's {MAX_LINE}-byte"
                               f" buffer: keepalived stops substituting midway ({_abridged(text)})")
                    self.finding(path, number, f"{why}; the doctor reads the line unexpanded")
                    text = unexpanded
                    break
                if following:
                    self.count_lines(len(following), path, number)
                    pending.extendleft(reversed(following))
                text, _ = decomment(text)
                if not (text.startswith("@") or "$" in text):
                    break
            if text:
                out.append(text)
        return out

    def _conditional(self, text):
        """``@ID rest`` / ``@^ID rest``: rest when it applies to this director, else ''."""
        negated = text.startswith("@^")
        start = 2 if negated else 1
        m = re.search(r"[ \t]", text[start:])
        if m is None:
            return ""
        ident = text[start:start + m.start()]
        self.conditionals.add(ident)
        if (ident == self.config_id) == negated:
            return ""
        return text[start + m.start():].lstrip(" \t")

    def _define(self, text):
        m = _DEFINITION.match(text)
        if m is None:
            return False
        name = m.group(1)
        value = text[m.end():].lstrip(" \t")
        if value.endswith("\\"):
            self.open_definition = (name, [value[:-1].rstrip(" \t")] if value[:-1].strip(" \t") else [])
        else:
            self.defs[name] = _Definition(value)
        return True

    def _continue_definition(self, raw):
        if not raw:
            self._close_definition()
            return
        text, _ = decomment(raw)
        if not text:
            return  # comment lines inside a definition are skipped
        lines = self.open_definition[1]
        if text.endswith("\\"):
            text = text[:-1].rstrip(" \t")
            if text:
                lines.append(text)
            return
        lines.append(text)
        self._close_definition()

    def _close_definition(self):
        name, lines = self.open_definition
        self.open_definition = None
        self.defs[name] = _Definition("\n".join(lines), multiline=len(lines) > 0)

    def _substitute(self, text, directory, allowed):
        """(text, following lines, substitutions made, problem) or None if none applied.

        ``problem``: "loop" when more than ``allowed`` substitutions would be
        needed, "long" when one would make the line longer than keepalived's
        buffer (keepalived then stops and keeps the line as it is).
        """
        pos = 0
        following: list[str] = []
        count = 0
        while True:
            i = text.find("$", pos)
            if i < 0 or i + 1 >= len(text):
                break
            m = _REFERENCE.match(text, i)
            definition = None
            params = ""
            if m is not None:
                name = m.group(1) or m.group(3)
                params = m.group(2) or ""
                definition = self.defs.get(name)
                if definition is not None:
                    if definition.multiline and m.end() != len(text):
                        definition = None
                    elif params.strip() and (not definition.params or params.endswith(" ")):
                        definition = None
            if definition is None:
                pos = i + 1
                continue
            if count >= allowed:
                return text, following, count, "loop"
            value = definition.value
            if callable(value):
                value = value(params, os.path.abspath(directory or "."))
            rest: list[str] = []
            if definition.multiline:
                value, *rest = value.split("\n")
            assert m is not None  # a definition was found by the match
            expanded = text[:i] + value + text[m.end():]
            if _byte_length(expanded) > MAX_LINE:
                return text, [], count, "long"
            count += 1
            following = [line for line in rest if line] + following
            text = expanded
            pos = i
            if value.lstrip(" \t").startswith("~"):
                break
        return (text, following, count, None) if count else None

    # -- blocks ----------------------------------------------------------------

    def build(self, logical_lines):
        """The node tree of the logical lines: braces open and close blocks."""
        root: list[Node] = []
        current = root
        stack = []  # (node whose block is open, the enclosing list)
        last = None  # the node a following '{' opens
        for path, number, text in logical_lines:
            for piece in pieces(text) if ("{" in text or "}" in text) else (text,):
                if piece == "{":
                    if last is None or last.block is not None:
                        self.finding(path, number, "unexpected '{' (keepalived ignores it, and its"
                                                   " '}' then closes the enclosing block)")
                        last = Node("{", (), "{", path, number)
                    last.block = []
                    stack.append((last, current))
                    current = last.block
                    last = None
                elif piece == "}":
                    if not stack:
                        self.finding(path, number, "extra '}'")
                        continue
                    closed, current = stack.pop()
                    closed.end = (path, number)
                    last = None
                else:
                    split = words(piece)
                    if not split:
                        continue
                    last = Node(split[0], tuple(split[1:]), piece, path, number)
                    current.append(last)
        if not self.exceeded:
            for node, _ in reversed(stack):
                self.finding(node.file, node.line, f"missing '}}': the block of {node.keyword}"
                                                   " opened here is never closed")
        return root


def _include(text):
    """(kind, pattern) for an include line, else None."""
    if not text.startswith("include") or len(text) < 8:
        return None
    if text[7].isspace():
        return "include", text[8:].lstrip(" \t")
    if len(text) > 8 and text[7] in "rmwba" and text[8].isspace():
        return text[:8], text[9:].lstrip(" \t")
    return None


def _is_dir(entry):
    try:
        return entry.is_dir()
    except OSError:
        return False


def _byte_length(text):
    """Bytes ``text`` takes in the file (keepalived counts bytes, not characters)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def _abridged(text, keep=40):
    """``text`` for a message: its start and its length."""
    return f"{_byte_length(text)} bytes: {text if len(text) <= keep else text[:keep] + '…'}"


def _size_text(size):
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size:,} bytes"
