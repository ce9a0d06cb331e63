"""The kachecks Debian package on this machine: its version, installing and purging it."""

import os
import subprocess
from pathlib import Path

PACKAGE = "kachecks"


def installed_version():
    """Version of the installed package, or None."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", PACKAGE],
        capture_output=True, text=True,
    )
    status, _, version = done.stdout.partition(" ")
    return version if done.returncode == 0 and status == "installed" else None


def deb_version(deb):
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def apt_get(*args, systemd=None, env=None):
    """apt-get as a person runs it (no forced conffile answers); output kept for failures.
    ``systemd``: a SystemdStandIn to run it under, as if systemd were PID 1."""
    env = dict(os.environ if env is None else env, DEBIAN_FRONTEND="noninteractive")
    if systemd is None:
        done = subprocess.run(["apt-get", "-y", "-q", *args], capture_output=True, text=True,
                              env=env, timeout=300)
    else:  # apt gives dpkg (so the maintainer scripts) a PATH of its own: DPkg::Path
        done = systemd.run(["apt-get", "-y", "-q", "-o", f"DPkg::Path={systemd.path}", *args],
                           env)
    assert done.returncode == 0, f"apt-get {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def install(deb):
    apt_get("install", "--allow-downgrades", str(Path(deb).resolve()))
    assert installed_version() == deb_version(deb)


def purge():
    apt_get("purge", PACKAGE)
    assert installed_version() is None


# deb-systemd-invoke as systemd acts on a service (start, stop, restart, try-restart):
# the unit's ExecStart run detached, its pid in $RUN/UNIT.pid; every call logged.
_INVOKE = r"""#!/bin/sh
echo "deb-systemd-invoke $*" >> "$KACHECKS_STANDIN_LOG"
run=$KACHECKS_STANDIN_RUN
action=$1
shift
alive() {  # a zombie (its parent has not reaped it yet) is gone
    kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]
}
for unit in "$@"; do
    file=$(ls "/lib/systemd/system/$unit" "/usr/lib/systemd/system/$unit" 2>/dev/null | head -n 1)
    command=$(sed -n 's/^ExecStart=//p' "$file" 2>/dev/null)
    [ -n "$command" ] || continue  # a timer, a unit not installed: recorded only
    pid=$(cat "$run/$unit.pid" 2>/dev/null || true)
    active=0
    if [ -n "$pid" ] && alive "$pid"; then active=1; fi
    case $action in stop|restart|try-restart)
        if [ $active = 1 ]; then
            kill "$pid"
            for _ in $(seq 200); do alive "$pid" || break; sleep 0.05; done
        fi
        rm -f "$run/$unit.pid" ;;
    esac
    case $action in start|restart|try-restart)
        if [ $action = start ] && [ $active = 1 ]; then continue; fi
        if [ $action = try-restart ] && [ $active = 0 ]; then continue; fi
        setsid sh -c "exec $command" >> "$run/$unit.log" 2>&1 < /dev/null &
        echo $! > "$run/$unit.pid" ;;
    esac
done
"""


class SystemdStandIn:
    """Where systemd is not PID 1 (here, CI, a scripts/test-in-debian root), what the
    maintainer scripts do to services where it is: ``run(argv)`` runs a command (apt-get)
    in a mount namespace of its own that has /run/systemd/system, with a
    deb-systemd-invoke that starts and stops the installed units' ExecStart for real
    (``start(unit)``, ``pid(unit)``) and a systemctl that only records; ``calls()``
    lists what they were asked, in order. ``stop_all()`` at the end."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.bin = self.directory / "bin"
        self.run_dir = self.directory / "run"
        self.log = self.directory / "calls"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        self.log.write_text("")
        (self.bin / "deb-systemd-invoke").write_text(_INVOKE)
        (self.bin / "systemctl").write_text(
            '#!/bin/sh\necho "systemctl $*" >> "$KACHECKS_STANDIN_LOG"\n')
        for name in ("deb-systemd-invoke", "systemctl"):
            (self.bin / name).chmod(0o755)

    @property
    def path(self):
        return f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin"

    def env(self, base):
        return {**base, "PATH": self.path,
                "KACHECKS_STANDIN_LOG": str(self.log), "KACHECKS_STANDIN_RUN": str(self.run_dir)}

    def run(self, argv, env, timeout=300):
        """``argv`` where systemd seems to run; its CompletedProcess (output captured)."""
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mkdir -p /run/systemd && mount -t tmpfs kachecks-test /run/systemd'
             ' && mkdir /run/systemd/system && exec "$@"', "sh", *argv],
            env=self.env(env), capture_output=True, text=True, timeout=timeout)

    def start(self, unit, env):
        subprocess.run([str(self.bin / "deb-systemd-invoke"), "start", unit],
                       env=self.env(env), check=True, timeout=30)
        return self.pid(unit)

    def pid(self, unit):
        """The pid of the unit's running process, or None."""
        try:
            pid = int((self.run_dir / f"{unit}.pid").read_text())
            with open(f"/proc/{pid}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (FileNotFoundError, ValueError, ProcessLookupError, IndexError):
            return None
        return None if state == b"Z" else pid

    def calls(self):
        return self.log.read_text().splitlines()

    def stop_all(self, env):
        for pidfile in self.run_dir.glob("*.pid"):
            subprocess.run([str(self.bin / "deb-systemd-invoke"), "stop",
                            pidfile.name[:-len(".pid")]], env=self.env(env), timeout=30)
