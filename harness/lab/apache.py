"""Debian's Apache httpd as a real server inside a namespace (the reference's web1/web2).

One throw-away ServerRoot per instance (config, pid, logs, document root), so two
instances run side by side and nothing touches /etc/apache2.
"""

import sys
from pathlib import Path

from harness.peers.keepalived import secure_dir
from harness.wait import wait_for

APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")


def config(root, address, name):
    return f"""\
ServerRoot {root}
ServerName {name}
Listen {address}:80
PidFile {root}/apache2.pid
DefaultRuntimeDir {root}
ErrorLog {root}/error.log
LogLevel warn
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule mime_module {MODULES}/mod_mime.so
TypesConfig /etc/mime.types
User www-data
Group www-data
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
LogFormat "%h \\"%r\\" %>s %b" brief
CustomLog {root}/access.log brief
DocumentRoot {root}/htdocs
<Directory {root}/htdocs>
    Require all granted
</Directory>
"""


class Apache:
    """``apache2 -DFOREGROUND`` serving ``htdocs`` on ``address``:80 in namespace ``ns``."""

    def __init__(self, ns, root, address):
        self.ns = ns
        self.root = secure_dir(root)
        self.htdocs = secure_dir(self.root / "htdocs")
        self.address = address
        self.conf = self.root / "apache2.conf"
        self.conf.write_text(config(self.root, address, ns.hostname or ns.name))
        self.proc = None

    def put(self, name, text):
        path = self.htdocs / name
        path.write_text(text)
        path.chmod(0o644)
        return path

    def start(self, timeout=10.0):
        self.proc = self.ns.start([APACHE, "-DFOREGROUND", "-f", self.conf],
                                  log=self.root / "stderr.log")
        wait_for(self._listening, timeout, what=f"apache2 in {self.ns.name}")
        return self

    def _listening(self):
        if not self.proc.running():
            raise RuntimeError(f"apache2 in {self.ns.name} exited: {self.errors()}")
        probe = f"http://{self.address}/"
        done = self.ns.run([sys.executable, "-c",
                            "import sys,urllib.request as u\n"
                            "try: u.urlopen(sys.argv[1], timeout=1)\n"
                            "except u.HTTPError: pass\n", probe])
        return done.returncode == 0

    def errors(self):
        texts = [p.read_text(errors="replace") for p in
                 (self.root / "stderr.log", self.root / "error.log") if p.exists()]
        return "\n".join(texts)[-2000:]

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
