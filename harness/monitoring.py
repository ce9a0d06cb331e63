"""The shipped Icinga 2 and Nagios command definitions, turned into command lines.

No Icinga or Nagios runs here: this reads the subset of the Icinga 2 DSL the
definitions use (objects, strings, numbers, booleans, arrays, dictionaries,
``vars.NAME = …``, ``import``) and resolves the arguments by Icinga 2's rules
(lib/icinga/macroprocessor.cpp, ResolveArguments): an argument whose value macro
is unset is left out (an error when ``required``), ``set_if`` adds a key when it
resolves true, a key without value is a flag, an array repeats its key, arguments
are ordered by ``order`` (then by key, Icinga's dictionary order). Nagios command
lines get their ``$HOSTADDRESS$``/``$ARGn$`` macros replaced and run through
``/bin/sh -c``, as Nagios runs a command line that holds quotes.
"""

import re

TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+|//[^\n]*|\#[^\n]*|/\*.*?\*/)
  | (?P<newline>\n)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][\w.]*)
  | (?P<punct>[{}\[\]=,;])
""", re.X | re.S)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _tokens(text):
    position, found = 0, []
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match:
            raise ValueError(f"cannot read Icinga DSL at {text[position:position + 30]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind == "space":
            continue
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), value[1:-1])
        found.append((kind, value))
    return found


class _Parser:
    def __init__(self, text):
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, skip_newlines=True):
        while skip_newlines and self.i < len(self.tokens) and self.tokens[self.i][0] == "newline":
            self.i += 1
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self, value=None):
        kind, got = self.peek()
        if value is not None and got != value:
            raise ValueError(f"expected {value!r}, got {got!r}")
        self.i += 1
        return kind, got

    def value(self):
        kind, got = self.take()
        if kind in ("string",):
            return got
        if kind == "number":
            return float(got) if "." in got else int(got)
        if kind == "name" and got in ("true", "false"):
            return got == "true"
        if got == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return items
        if got == "{":
            return self.block()
        raise ValueError(f"unexpected {got!r}")

    def block(self):
        """``{ key = value … }`` after its opening brace, as a dict (``vars.x`` nested)."""
        result = {}
        while self.peek()[1] != "}":
            kind, key = self.take()
            if key == "import":
                result.setdefault("import", []).append(self.take()[1])
                continue
            self.take("=")
            target = result
            *parents, last = key.split(".") if kind == "name" else [key]
            for parent in parents:
                target = target.setdefault(parent, {})
            target[last] = self.value()
            if self.peek()[1] in (";", ","):
                self.take()
        self.take("}")
        return result

    def objects(self):
        found = {}
        while self.peek()[0] is not None:
            self.take("object")
            _kind, object_type = self.take()
            _kind, name = self.take()
            self.take("{")
            found[(object_type, name)] = self.block()
        return found


def check_commands(text):
    """name -> definition dict of every ``object CheckCommand`` in ``text``."""
    return {name: body for (kind, name), body in _Parser(text).objects().items()
            if kind == "CheckCommand"}


MACRO = re.compile(r"\$([\w.]+)\$")


class Missing(Exception):
    """A macro with no value: Icinga leaves the argument out."""


def _resolve(value, lookup, depth=0):
    if depth > 10:
        raise ValueError("macro recursion")
    if isinstance(value, list):
        return [_resolve(v, lookup, depth) for v in value]
    if not isinstance(value, str):
        return value
    whole = MACRO.fullmatch(value)
    if whole:  # "$x$" alone keeps x's type (an array stays an array)
        return _resolve(lookup(whole.group(1)), lookup, depth + 1)
    return MACRO.sub(lambda m: _text(_resolve(lookup(m.group(1)), lookup, depth + 1)), value)


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def icinga_argv(command, service_vars, host):
    """The argv Icinga 2 runs for ``command`` (a check_commands() entry) on a service with
    ``service_vars`` on ``host`` ({"address": …, "vars": {…}})."""
    variables = {**command.get("vars", {}), **host.get("vars", {}), **service_vars}

    def lookup(name):
        if name in variables:
            return variables[name]
        if name == "check_address" and "ipv4-or-ipv6" in command.get("import", []):
            return host.get("address") or host.get("address6") or _missing(name)
        if name in ("address", "address6", "name") and host.get(name):
            return host[name]
        return _missing(name)

    arguments = []
    for key, spec in command.get("arguments", {}).items():
        spec = spec if isinstance(spec, dict) else {"value": spec}
        if "set_if" in spec:
            try:
                flag = _resolve(spec["set_if"], lookup)
            except Missing:
                continue
            if flag in (False, 0, "false", "0", ""):
                continue
        value = None
        if "value" in spec:
            try:
                value = _resolve(spec["value"], lookup)
            except Missing:
                if spec.get("required"):
                    raise ValueError(f"required macro of {key} is missing") from None
                continue
        arguments.append((spec.get("order", 0), key, spec, value))
    argv = list(command["command"])
    for _order, key, spec, value in sorted(arguments, key=lambda a: (a[0], a[1])):
        key = spec.get("key", key)
        values = value if isinstance(value, list) else [value]
        for n, item in enumerate(values):
            if not spec.get("skip_key") and (n == 0 or spec.get("repeat_key", True)):
                argv.append(key)
            if "value" in spec:
                argv.append(_text(item))
    return argv


def _missing(name):
    raise Missing(name)


DEFINE = re.compile(r"define\s+command\s*\{(.*?)\}", re.S)


def nagios_commands(text):
    """command_name -> command_line of every ``define command`` in ``text``."""
    found = {}
    for body in DEFINE.findall(text):
        fields = dict(re.findall(r"^\s*(\w+)\s+(.*?)\s*$", body, re.M))
        found[fields["command_name"]] = fields["command_line"]
    return found


def nagios_command_line(line, macros):
    """``line`` with its ``$NAME$`` macros (HOSTADDRESS, ARG1…) replaced, as Nagios does."""
    return MACRO.sub(lambda m: str(macros[m.group(1)]), line)
