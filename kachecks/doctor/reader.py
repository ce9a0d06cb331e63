"""Read keepalived.conf the way keepalived's own parser reads it.

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
while reading becomes a ``syntax`` finding; what makes the file unreadable
as a whole (missing, a directory, binary data, an include loop) raises
ReadError, one line.
"""

import os
import re
import stat

from kachecks.doctor.findings import ERROR, WARNING, Finding

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
MAX_EXPANSIONS = 100  # substitutions in one line before it is called a loop

_SPECIAL = re.compile(r'[!#"\\]')
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
_DEFINITION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=")
# $NAME ends at a blank, ',', ')' or the end of the line; ${NAME} may carry
# numeric parameters (${_RANDOM 1 10}).
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_]\w*)([ 0-9]*)\}|([A-Za-z_]\w*)(?=[ \t,)]|$))", re.ASCII)
_BRACE_OR_QUOTE = re.compile(r'[{}"]')
_WORD = re.compile(r'"([^"]*)"|([^ \t\f\n\r\v"]+)')
_GLOB_MAGIC = re.compile(r"[*?[{]")


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


class Config:
    """A configuration read: top-level ``nodes``, the ``files`` read (in order).

    ``names`` maps the file names keepalived prints in its messages (an
    include as its glob matched it, relative to the including file) to ours.
    """

    __slots__ = ("path", "nodes", "files", "findings", "config_id", "names", "conditionals")

    def __init__(self, path, nodes, files, findings, config_id, names, conditionals=()):
        self.path = path
        self.nodes = nodes
        self.files = files
        self.findings = findings
        self.config_id = config_id
        self.names = names
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
                  reader.conditionals)


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
    """keepalived's decomment(): (text without comment and outer blanks, unterminated quote?)."""
    text = text.lstrip(" \t")
    if _SPECIAL.search(text) is None:
        return text.rstrip(" \t"), False
    chars = list(text)
    quote = False
    cont = False
    skip = None
    i = 0
    while i < len(chars):
        c = chars[i]
        if c == '"':
            if skip is None:
                quote = not quote
        elif c == "\\":
            if i + 1 < len(chars):
                if not quote and chars[i + 1] in "#!":
                    del chars[i]  # \# and \! stand for themselves
                    i += 1
                else:
                    i += 2
                continue
            del chars[i]
            cont = True
            break
        elif c in "#!" and not quote and skip is None:
            skip = i
        i += 1
    if skip is not None:
        del chars[skip:]
    out = "".join(chars).rstrip(" \t")
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


def expand_braces(pattern):
    """glob's GLOB_BRACE: ``a{b,c}d`` -> [abd, acd] (nested braces, ``\\`` escapes)."""
    depth = 0
    start = None
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
                head, body, tail = pattern[:start], pattern[start + 1:i], pattern[i + 1:]
                out = []
                for alternative in _split_alternatives(body):
                    out += expand_braces(head + alternative + tail)
                return out
        i += 1
    return [pattern]


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
        self.open_definition = None  # (name, [lines]) while a `\` continues one
        self.stack = []  # real paths of the files being read, outermost first

    def finding(self, file, line, message, severity=ERROR):
        self.findings.append(Finding(file, line, severity, "syntax", message))

    # -- files -----------------------------------------------------------------

    def lines(self, path, data=None):
        """Every logical line of the configuration: (file, line number, text)."""
        if data is not None:
            self.names[path] = path
            yield from self._file(path, None, None, data)
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
        yield from self._file(path, None, None)

    def _file(self, path, includer, include_line, data=None):
        real = os.path.realpath(path) if data is None else path
        if real in self.stack:
            chain = " -> ".join(os.path.basename(p) for p in [*self.stack[self.stack.index(real):], real])
            raise ReadError(f"include loop: {chain}", includer, include_line)
        try:
            if data is None:
                with open(path, "rb") as f:
                    data = f.read()
        except OSError as exc:
            if includer is None:
                raise ReadError(f"cannot read the configuration: {exc.strerror}", path) from None
            self.finding(includer, include_line, f"cannot read included file {path}: {exc.strerror}"
                                                 " (keepalived skips it)")
            return
        bad = _CONTROL.search(data.decode("latin-1"))
        if bad is not None:
            line = data.count(b"\n", 0, bad.start()) + 1
            included = f" (included at {includer}:{include_line})" if includer else ""
            raise ReadError(f"binary data (byte 0x{ord(bad.group()):02x}): not a keepalived"
                            f" configuration file{included}", path, line)
        self.files.append(path)
        self.stack.append(real)
        directory = os.path.dirname(path)
        try:
            text = data.decode("utf-8", "surrogateescape")
            for number, raw in enumerate(text.split("\n"), 1):
                for logical in self._physical(raw, path, number, directory):
                    include = _include(logical)
                    if include is None:
                        yield path, number, logical
                    else:
                        yield from self._include(include, path, number, directory)
        finally:
            self.stack.pop()
        if self.open_definition is not None:
            self._close_definition()

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
        matches = []
        for alternative in expand_braces(pattern):
            matches += _glob(alternative, directory)
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
        pending = [text]
        expansions = 0
        while pending:
            text = pending.pop(0)
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
                expanded = self._substitute(text, directory)
                if expanded is None:
                    break
                expansions += 1
                if expansions > MAX_EXPANSIONS:
                    self.finding(path, number, "definitions expand forever (a $NAME that refers to"
                                               " itself?)")
                    return out
                text, following = expanded
                pending[:0] = following
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

    def _substitute(self, text, directory):
        """(text, following lines) with definitions replaced, or None if none applied."""
        pos = 0
        following = []
        replaced = False
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
            count += 1
            if count > MAX_EXPANSIONS:
                return text, following  # the caller sees the same text again and stops
            value = definition.value
            if callable(value):
                value = value(params, os.path.abspath(directory or "."))
            if definition.multiline:
                first, *rest = value.split("\n")
                following = [line for line in rest if line] + following
                value = first
            text = text[:i] + value + text[m.end():]
            replaced = True
            pos = i
            if value.lstrip(" \t").startswith("~"):
                break
        return (text, following) if replaced else None

    # -- blocks ----------------------------------------------------------------

    def build(self, logical_lines):
        """The node tree of the logical lines: braces open and close blocks."""
        root = []
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
        for node, _ in reversed(stack):
            self.finding(node.file, node.line, f"missing '}}': the block of {node.keyword} opened"
                                               " here is never closed")
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


def _glob(pattern, directory):
    """Names matching ``pattern`` relative to ``directory``, sorted, as keepalived's glob() gives them."""
    import glob

    if _GLOB_MAGIC.search(pattern) is None:
        full = pattern if os.path.isabs(pattern) or not directory else os.path.join(directory, pattern)
        return [pattern] if os.path.lexists(full) else []
    if os.path.isabs(pattern):
        return sorted(glob.glob(pattern))
    return sorted(glob.glob(pattern, root_dir=directory or None))
