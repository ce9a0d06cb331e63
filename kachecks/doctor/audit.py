"""One audit: read the configuration, judge it, ask keepalived, merge, sort.

Reading and judging the file is local and fast; fetching the HTTP_GET urls
and running the kachecks checks touches the network (skipped with
``run=False``); ``keepalived -t`` runs beside them in its own process.
"""

from concurrent.futures import ThreadPoolExecutor

from kachecks import keepalivedconf, scriptline
from kachecks.doctor import agentaudit, commands, configtest, scripts, syntax, webchecks
from kachecks.doctor.findings import CODES, ERROR, WARNING, noted


class Report:
    """The findings of one audit, in file and line order; ``keepalived`` is the -t Outcome;
    ``listeners``: the kachecks-vrrp lines read but not run."""

    __slots__ = ("config", "findings", "keepalived", "listeners")

    def __init__(self, config, findings, keepalived, listeners=0):
        self.config = config
        self.findings = findings
        self.keepalived = keepalived
        self.listeners = listeners

    def count(self, severity):
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self):
        return self.count(ERROR)

    @property
    def warnings(self):
        return self.count(WARNING)


def audit(path, run=True, config_id=None, keepalived=None, use_keepalived=True, timeout=None,
          agent_config=None):
    """Audit ``path``; a Report, or ReadError when the file cannot be read at all.

    ``keepalived``: the binary for ``-t`` (default: found on PATH or in
    /usr/sbin); ``use_keepalived=False`` skips it. ``timeout``: seconds per
    HTTP_GET fetch instead of each checker's connect_timeout. ``agent_config``:
    the agent's kachecks.toml, read when keepalived.conf defines track files
    (default: the agent's own).
    """
    config = keepalivedconf.read(path, config_id)
    binary = configtest.find(keepalived) if use_keepalived else None
    version = configtest.version(binary) if binary else None
    skipped = None
    if binary and config.exceeded:
        # what the doctor would not read to the end, keepalived may never finish
        skipped = configtest.Outcome(binary, version, None, [], "the configuration reaches one"
                                     " of the doctor's bounds (above), and keepalived's parser"
                                     " may never finish reading such a file")
        binary = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(configtest.run, binary, path, config_id, version) if binary else None
        typos, shadows = syntax.check(config)
        found = noted(config) + typos
        more, listeners = local(config, scriptline.Dialect(version), run, timeout)
        found += more
        found += agentaudit.audit(config, agent_config)
        outcome = pending.result() if pending is not None else skipped
    if outcome is not None:
        found += configtest.findings(outcome, config, found, syntax.since, shadows)
    return Report(config, ordered(found, config.files), outcome, listeners)


def local(config, dialect, run, timeout):
    """Findings about scripts, checks and urls (the network only when ``run``), and how
    many kachecks-vrrp lines were not run (kachecks.doctor.commands says why)."""
    found = []
    every = scripts.collect(config, dialect)
    found += scripts.audit(every, scripts.Users(config), config)
    found += scripts.secret_findings(every)
    checks, bad = commands.parse(every)
    found += bad
    found += commands.settings(checks)
    found += commands.faulting_listeners(checks, config)
    listeners = [command for command in checks if command.listens]
    if run:
        urls = webchecks.collect(config)
        with ThreadPoolExecutor(max_workers=1) as pool:
            ran = pool.submit(commands.run_all, [c for c in checks if not c.listens])
            found += webchecks.judge(urls, webchecks.fetch_all(urls, timeout))
            found += ran.result()
    return found, len(listeners)


def ordered(findings, files):
    """By file (in reading order), line, then code; duplicates dropped."""
    rank = {name: i for i, name in enumerate(files)}
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (rank.get(f.file, len(rank)), f.line or 0,
                                         CODES.index(f.code)))
