"""The programs keepalived would run, found and judged as keepalived judges them.

keepalived takes the first word after ``misc_path``, ``script`` or a
``notify*`` keyword as the whole command and splits it again into argv
(quotes group; backslash escapes, applied twice before keepalived 2.3.2).
No shell is involved. At start-up it resolves the program, checks that the
script user may execute it, and, when the script runs as root, that no
component of its path is writable by anyone but root; what fails is
disabled. A program that cannot be exec'ed (no ``#!`` line, a missing
interpreter) makes the child exit 0, which keepalived counts as success.
"""

import os
import re
import stat

from kachecks import files
from kachecks.checks.registry import without_env
from kachecks.doctor.findings import ERROR, WARNING, at
from kachecks.scriptline import BLANK, CommandError, split_command

# Where keepalived looks for a bare program name: systemd's PATH for services.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SCRIPT_USER = "keepalived_script"

NOTIFY_KEYWORDS = ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop",
                   "notify_deleted", "notify_master_rx_lower_pri")
GLOBAL_SCRIPTS = ("notify_fifo_script", "vrrp_notify_fifo_script", "lvs_notify_fifo_script",
                  "startup_script", "shutdown_script")

class Script:
    """One program keepalived would run, and the settings it runs under.

    ``keyword``: misc_path, script, notify_up… (on ``node``). ``argv`` is
    None when keepalived cannot split the line (``problem`` says why).
    ``user``: (user, group) given for this script, or None for the default.
    ``timeout``: seconds before keepalived kills it, with the node that set it.
    """

    __slots__ = ("keyword", "node", "argv", "problem", "user", "timeout", "timeout_node", "dynamic")

    def __init__(self, keyword, node, argv, problem=None, user=None, timeout=None,
                 timeout_node=None, dynamic=None):
        self.keyword = keyword
        self.node = node
        self.argv = argv
        self.problem = problem
        self.user = user
        self.timeout = timeout
        self.timeout_node = timeout_node
        self.dynamic = dynamic  # MISC_CHECK: misc_dynamic given (None elsewhere)

    @property
    def disabled(self):
        """What keepalived does when it refuses this script at start-up."""
        if self.keyword == "misc_path":
            return "keepalived drops this MISC_CHECK (the real server is no longer checked by it)"
        if self.keyword == "script":
            return "keepalived disables this vrrp_script"
        return "keepalived never runs it"

    @property
    def env_fails(self):
        """What keepalived sees when ``env --block-signal=…`` cannot run the program
        behind it: env exits 127 (not found) or 126 (not executable) at every run."""
        if self.keyword == "misc_path" and self.dynamic:
            return ("env exits 126 or 127 at every run, which misc_dynamic reads as healthy"
                    " (weight 124 or 125)")
        if self.keyword in ("misc_path", "script"):
            return "env exits 126 or 127 at every run: keepalived counts each run as a failure"
        return "env exits 126 or 127: it never runs"


def script_argv(node, dialect):
    """(argv, problem) of a script keyword line, split as keepalived splits it."""
    try:
        line = split_command(node.raw, escapes=dialect.escape_twice, hex_digits=dialect.hex_digits)
        if len(line) < 2 or not line[1].strip(BLANK):
            return None, f"{node.keyword} has no command"
        return split_command(line[1], hex_digits=dialect.hex_digits), None
    except CommandError as exc:
        return None, f"keepalived cannot split this line ({exc}) and drops the script"


def _line_user(node, dialect, first):
    """(user, group) written after the command (notify scripts), or None."""
    try:
        words = split_command(node.raw, escapes=dialect.escape_twice, hex_digits=dialect.hex_digits)
    except CommandError:
        return None
    extra = words[first:first + 2]
    return (extra[0], extra[1] if len(extra) > 1 else None) if extra else None


def _block_user(block):
    node = block.child("user")
    if node is None or not node.args:
        return None
    return node.args[0], node.args[1] if len(node.args) > 1 else None


def seconds(text):
    """A keepalived time value (integer or decimal seconds), or None when it is not one."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


def collect(config, dialect):
    """Every Script the configuration makes keepalived run, in file order."""
    found = []

    def add(keyword, node, **kw):
        argv, problem = script_argv(node, dialect)
        found.append(Script(keyword, node, argv, problem, **kw))

    for top in config.nodes:
        block = top.block or ()
        if top.keyword == "global_defs":
            for node in block:
                if node.keyword in GLOBAL_SCRIPTS:
                    add(node.keyword, node, user=_line_user(node, dialect, 2))
        elif top.keyword == "vrrp_script":
            node = top.child("script")
            if node is not None:
                interval = seconds(top.value("interval", "1")) or 1
                timeout_node = top.child("timeout")
                timeout = seconds(top.value("timeout"))
                if not timeout:
                    timeout, timeout_node = interval, top.child("interval")
                add("script", node, user=_block_user(top), timeout=timeout,
                    timeout_node=timeout_node)
        elif top.keyword in ("vrrp_instance", "vrrp_sync_group"):
            for node in block:
                if node.keyword in NOTIFY_KEYWORDS and node.args:
                    add(node.keyword, node, user=_line_user(node, dialect, 2))
        elif top.keyword == "virtual_server":
            _collect_virtual_server(top, add, dialect)
    return found


def _collect_virtual_server(vs, add, dialect):
    delay_loop = seconds(vs.value("delay_loop", "60")) or 60
    delay_node = vs.child("delay_loop")
    for node in vs.block or ():
        if node.keyword in ("quorum_up", "quorum_down") and node.args:
            add(node.keyword, node, user=_line_user(node, dialect, 2))
        if node.keyword != "real_server":
            continue
        for inner in node.block or ():
            if inner.keyword in ("notify_up", "notify_down") and inner.args:
                add(inner.keyword, inner, user=_line_user(inner, dialect, 2))
            elif inner.keyword == "MISC_CHECK":
                path = inner.child("misc_path")
                if path is None:
                    continue
                timeout_node = inner.child("misc_timeout")
                timeout = seconds(inner.value("misc_timeout"))
                if not timeout:
                    # keepalived: 0 or unset means the virtual server's delay_loop
                    timeout, timeout_node = delay_loop, delay_node
                add("misc_path", path, user=_block_user(inner), timeout=timeout,
                    timeout_node=timeout_node, dynamic=inner.has("misc_dynamic"))


# --- users --------------------------------------------------------------------------

class Identity:
    """Who a script runs as: uid, gid and how that was decided."""

    __slots__ = ("uid", "gid", "name", "how")

    def __init__(self, uid, gid, name, how):
        self.uid = uid
        self.gid = gid
        self.name = name
        self.how = how


def resolve_user(user, group):
    """Identity for a user [group] given in the configuration, or None if unknown."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        return None
    gid = entry.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        except KeyError:
            return None
    return Identity(entry.pw_uid, gid, entry.pw_name, "")


class Users:
    """keepalived's choice of user for each script: explicit, script_user, keepalived_script, root."""

    def __init__(self, config):
        blocks = config.blocks("global_defs")
        defaults = [node for block in blocks for node in block.children("script_user")]
        self.script_user_node = defaults[-1] if defaults else None
        self.security = any(block.has("enable_script_security") for block in blocks)

    def default(self):
        """(Identity or None, why): the user of scripts that name none."""
        if self.script_user_node is not None and self.script_user_node.args:
            args = self.script_user_node.args
            who = resolve_user(args[0], args[1] if len(args) > 1 else None)
            if who is None:
                return None, f"script_user {' '.join(args)} is not a known user/group"
            who.how = "script_user"
            return who, None
        who = resolve_user(DEFAULT_SCRIPT_USER, None)
        if who is not None:
            who.how = f"the {DEFAULT_SCRIPT_USER} user"
            return who, None
        if self.security:
            return None, (f"enable_script_security is set but there is neither a {DEFAULT_SCRIPT_USER}"
                          " user nor a script_user: keepalived drops every script that names no user")
        return Identity(0, 0, "root", "keepalived's own user (no script_user, no keepalived_script)"), None

    def of(self, script):
        if script.user is not None:
            who = resolve_user(*script.user)
            if who is None:
                return None, f"user {' '.join(u for u in script.user if u)} is not a known user/group"
            who.how = "its user keyword"
            return who, None
        return self.default()


# --- programs -----------------------------------------------------------------------

def find_program(name):
    """keepalived's path search for a bare program name (systemd's PATH)."""
    for directory in SERVICE_PATH.split(":"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def can_execute(st, who):
    """keepalived's is_executable() for uid:gid (supplementary groups are dropped)."""
    mode = st.st_mode
    if who.uid == 0:
        return bool(mode & 0o111)
    if who.uid == st.st_uid:
        return bool(mode & stat.S_IXUSR)
    if who.gid == st.st_gid:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def exec_problem(path, shell_fallback=False):
    """Why execve() of this file would fail with ENOEXEC/ENOENT, or None.

    ``shell_fallback``: run by execvp (``env``), which hands a file execve() calls
    ENOEXEC to /bin/sh: only a missing interpreter fails then."""
    try:  # opened without blocking: a FIFO swapped in since its stat would hang us
        fd, _info = files.open_regular(path, "", None)
    except files.UnusableFile:
        return None
    try:
        head = os.read(fd, 256)
    except OSError:
        return None
    finally:
        os.close(fd)
    if head.startswith(b"\x7fELF"):
        return None
    if not head.startswith(b"#!"):
        return None if shell_fallback else ("has no #! line: its exec fails and keepalived counts"
                                            " that as success")
    line = head[2:].split(b"\n", 1)[0].strip()
    interpreter = line.split()[0].decode("utf-8", "surrogateescape") if line else ""
    if not interpreter:
        return None if shell_fallback else ("has an empty #! line: its exec fails and keepalived"
                                            " counts that as success")
    if not os.path.isfile(interpreter) or not os.access(interpreter, os.X_OK):
        if shell_fallback:
            return f"its #! interpreter {interpreter} does not exist"
        return (f"its #! interpreter {interpreter} does not exist: the exec fails and keepalived"
                " counts that as success")
    return None


def insecure_components(path):
    """[(component, why)] keepalived's script security refuses in ``path`` (its check_security)."""
    bad = []
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        component = "/".join(parts[:i]) or "/"
        if i > 1 and not parts[i - 1]:
            continue
        try:
            st = os.lstat(component)
        except OSError as exc:
            return [(component, exc.strerror)]
        last = i == len(parts)
        if (not last and not stat.S_ISDIR(st.st_mode)) or (last and not (stat.S_ISREG(st.st_mode)
                                                                           or stat.S_ISLNK(st.st_mode))):
            bad.append((component, "wrong file type (not a directory on the way, nor a file at the end)"))
            break
        checked = (stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_ISVTX) or stat.S_ISREG(st.st_mode)
        if st.st_uid != 0:
            bad.append((component, f"owned by uid {st.st_uid}, not root"))
        elif checked and st.st_gid != 0 and st.st_mode & stat.S_IWGRP:
            bad.append((component, f"writable by group {st.st_gid}"))
        elif checked and st.st_mode & stat.S_IWOTH:
            bad.append((component, "writable by everyone"))
    return bad


def audit(scripts, users, config):
    """not-executable and script-security findings for ``scripts``.

    A configuration runs the same few programs for every real server, so
    each (program, user) is judged once.
    """
    findings = []
    root_scripts = []
    judged: dict[tuple, tuple] = {}
    for script in scripts:
        if script.argv is None:
            findings.append(at(script.node, ERROR, "not-executable", script.problem))
            continue
        program = script.argv[0] if script.argv else ""
        if program.startswith("<") and program[1:].lstrip(" \t").startswith("/"):
            continue  # "</dev/tcp/…": keepalived hands it to /bin/sh
        who, why = users.of(script)
        if who is None:
            findings.append(at(script.node, ERROR, "not-executable", f"{program}: {why}: {script.disabled}"))
            continue
        key = (program, who.uid, who.gid, who.name, who.how, script.disabled)
        if key not in judged:
            judged[key] = _judge(program, who, script.disabled, users.security)
        as_root, problems = judged[key]
        findings += [at(script.node, *problem) for problem in problems]
        behind = without_env(script.argv)  # env --block-signal=… PROGRAM (docs/checks.md)
        if behind and len(behind) < len(script.argv):
            env_key = (behind[0], who.uid, who.gid, who.name, who.how, script.env_fails, "env")
            if env_key not in judged:
                judged[env_key] = _judge(behind[0], who, script.env_fails, users.security, env=True)
            findings += [at(script.node, *problem) for problem in judged[env_key][1]]
        if as_root:
            root_scripts.append(script)
    if root_scripts and not users.security:
        first = root_scripts[0]
        findings.append(at(first.node, WARNING, "script-security",
                           f"{len(root_scripts)} script(s) run as root and global_defs has no"
                           " enable_script_security: keepalived runs them anyway, even from paths"
                           " other users can write to (keepalived -t exits 6: SECURITY VIOLATION)"))
    return findings


def _judge(program, who, disabled, security, env=False):
    """(runs as root?, [(severity, code, message)]) for ``program`` run by ``who``.

    ``env``: the program ``env`` runs, not keepalived: env finds a bare name on its
    PATH and runs a file without ``#!`` with /bin/sh (execvp), and keepalived's
    script security checks env's path only.
    """
    problems = []
    finder = "env" if env else "keepalived"
    if "/" not in program:
        found = find_program(program)
        if found is None:
            return False, [(ERROR, "not-executable", f"{program}: not found in {finder}'s PATH"
                                                     f" ({SERVICE_PATH}): {disabled}")]
        problems.append((WARNING, "not-executable", f"{program} is not a full path: {finder} finds"
                                                    f" {found} by path search; write the full path"))
        program = found
    try:
        real = os.path.realpath(program, strict=True)
        st = os.stat(real)
    except OSError as exc:
        return False, problems + [(ERROR, "not-executable", f"{program}: {exc.strerror}: {disabled}")]
    if not stat.S_ISREG(st.st_mode):
        return False, problems + [(ERROR, "not-executable", f"{program} is not a regular file: {disabled}")]
    if not can_execute(st, who):
        return False, problems + [(ERROR, "not-executable",
                                   f"{program} is not executable by {who.name} ({who.uid}:{who.gid},"
                                   f" {who.how}): {disabled}")]
    problem = exec_problem(real, shell_fallback=env)
    if problem is not None:
        problems.append((ERROR, "not-executable",
                         f"{program} {problem}" + (f": {disabled}" if env else "")))
    if not (who.uid == 0 or who.gid == 0 or _setid_root(st)):
        return False, problems
    bad = _insecure(program, real)
    if bad:
        listed = "; ".join(f"{c} {why}" for c, why in bad)
        if security and not env:
            problems.append((ERROR, "script-security", f"{program} runs as root but {listed}: under"
                                                       f" enable_script_security {disabled}"))
        else:
            guard = ("keepalived's script security checks env, not what env runs" if env
                     else "enable_script_security would disable it")
            problems.append((WARNING, "script-security",
                             f"{program} runs as root but {listed}: anyone who can write there runs"
                             f" code as root ({guard})"))
    return True, problems


def _setid_root(st):
    return ((st.st_uid == 0 and st.st_mode & stat.S_ISUID and st.st_mode & stat.S_IXUSR)
            or (st.st_gid == 0 and st.st_mode & stat.S_ISGID and st.st_mode & stat.S_IXGRP))


def _insecure(program, real):
    """Path components keepalived refuses for a script run as root: it checks the
    configured name in the resolved directory (when that is the same file), then the file."""
    named = os.path.join(os.path.dirname(real), os.path.basename(program))
    paths = [named if _same_file(named, real) else real]
    if paths[0] != real:
        paths.append(real)
    bad = []
    for path in paths:
        for problem in insecure_components(path):
            if problem not in bad:
                bad.append(problem)
    return bad


def _same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


# --- secrets on argv ------------------------------------------------------------------

_SECRET_OPTION = re.compile(r"^--?(?:[a-z0-9]+[-_])*(?:password|passwd|pass|secret|token|api[-_]?key|"
                            r"bind[-_]?pw|credentials?)(?:=(?P<value>.*))?$", re.I)
_SECRET_ENV = re.compile(r"^[A-Z_]*(?:PASSWORD|PASSWD|SECRET|TOKEN)[A-Z_]*=.+")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]+:[^/@\s]+@", re.I)
# program name prefix -> (short option taking a password, only when attached: -pSECRET)
_SHORT_PASSWORD = {"ldap": ("-w", False), "redis-cli": ("-a", False), "sshpass": ("-p", False),
                   "mysql": ("-p", True), "mariadb": ("-p", True)}
_SAFE_SUFFIXES = ("-file", "_file", "file", "-env", "-fd", "-stdin", "-prompt")


def secrets(argv):
    """Descriptions (never the secret) of passwords in ``argv``, looking into ``sh -c``."""
    if not argv:
        return []
    program = os.path.basename(argv[0])
    found = []
    for i, word in enumerate(argv[1:], 1):
        m = _SECRET_OPTION.match(word)
        if m is not None:
            name = word.split("=", 1)[0]
            if not name.lower().endswith(_SAFE_SUFFIXES) and (m.group("value") or i + 1 < len(argv)):
                found.append(f"{program} {name}")
                continue
        if _SECRET_ENV.match(word) and program == "env":
            found.append(f"env {word.split('=', 1)[0]}=…")
            continue
        if _URL_PASSWORD.match(word):
            found.append(f"{program}: a user:password@ URL")
            continue
        for prefix, (option, attached_only) in _SHORT_PASSWORD.items():
            if not program.startswith(prefix) or not word.startswith(option):
                continue
            attached = len(word) > len(option)
            if attached or (not attached_only and i + 1 < len(argv)):
                found.append(f"{program} {option}")
        if program in ("curl", "wget") and word in ("-u", "--user") and i + 1 < len(argv) and ":" in argv[i + 1]:
            found.append(f"{program} {word} USER:PASSWORD")
    if program in ("sh", "bash", "dash") and "-c" in argv[1:-1]:
        import shlex

        try:
            inner = shlex.split(argv[argv.index("-c", 1) + 1])
        except ValueError:
            inner = []
        found += secrets(inner)
    return found


def secret_findings(scripts):
    out = []
    for script in scripts:
        for what in secrets(script.argv or []):
            out.append(at(script.node, WARNING, "secret-on-argv",
                          f"{what}: a password on the command line shows in ps to every local user"
                          " (and keepalived.conf is often world-readable): read it from a file"
                          " or the environment"))
    return out
