"""What the package puts where, with which owner and mode, depending on what."""

import gzip
import os
import re
import stat
import subprocess
from pathlib import Path

from harness.debian import PACKAGE
from harness.docs import every_command, man_page_of, man_problems, render_man
from harness.entrypoints import names as executables
from harness.peers.cli import run

DEBIAN_LIBRARIES = {"python3-click", "python3-requests", "python3-ldap3", "python3-aiosmtplib"}
CONFFILE = Path("/etc/kachecks/kachecks.toml")
UNITS = ("kachecks-spool-flush.service", "kachecks-spool-flush.timer", "kachecks-worker.service")


def field(name):
    return subprocess.run(["dpkg-query", "-W", "-f", f"${{{name}}}", PACKAGE],
                          capture_output=True, text=True, check=True).stdout


def installed_paths():
    return subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True,
                          check=True).stdout.split()


def installed_units():
    """The units where the package put them: /lib/systemd/system on Debian 12,
    /usr/lib/systemd/system on 13 (each where systemd looks)."""
    found = {Path(p).name: Path(p) for p in installed_paths() if Path(p).name in UNITS}
    assert sorted(found) == sorted(UNITS)
    unit_paths = subprocess.run(["systemd-analyze", "unit-paths"], capture_output=True, text=True,
                                check=True).stdout.split()
    for path in found.values():
        assert str(path.parent) in unit_paths, path
    return [found[name] for name in UNITS]


def owner_and_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_every_console_script_is_in_usr_bin_on_debian_python(installed):
    for name in executables():
        path = Path("/usr/bin", name)
        assert owner_and_mode(path) == (0, 0, 0o755), name
        # "#!/usr/bin/python3", or "#! /usr/bin/python3" as dh-python >= 6 writes it.
        shebang = path.read_text().splitlines()[0]
        assert shebang.startswith("#!") and shebang[2:].split() == ["/usr/bin/python3"], (name, shebang)


def test_depends_only_on_debian_python_libraries_and_recommends_keepalived(installed):
    depends = {d.strip().split()[0] for d in field("Depends").split(",")}
    assert DEBIAN_LIBRARIES <= depends
    assert depends - DEBIAN_LIBRARIES <= {"python3", "python3:any"}
    # the agent's Prometheus endpoint is optional: it runs without the library
    recommends = {r.strip() for r in field("Recommends").split(",")}
    assert recommends == {"keepalived", "python3-prometheus-client"}


def test_code_and_libraries_load_from_debian_dist_packages(installed):
    code = ("import click, requests, ldap3, aiosmtplib, kachecks\n"
            "for m in (click, requests, ldap3, aiosmtplib, kachecks): print(m.__file__)")
    done = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                          cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    assert len(files) == 5
    assert all(f.startswith("/usr/lib/python3/dist-packages/") for f in files), files
    owner = subprocess.run(["dpkg", "-S", files[-1]], capture_output=True, text=True)
    assert owner.stdout.startswith(f"{PACKAGE}:")


def test_config_is_a_root_only_conffile(installed):
    assert owner_and_mode(CONFFILE) == (0, 0, 0o640)
    assert str(CONFFILE) in field("Conffiles")


def test_spool_directory_is_root_only(installed):
    assert Path("/var/spool/kachecks").is_dir()
    assert owner_and_mode("/var/spool/kachecks") == (0, 0, 0o750)


def test_state_directory_is_declared_root_only_for_systemd_tmpfiles(installed, tmp_path):
    subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create",
                    "/usr/lib/tmpfiles.d/kachecks.conf"], check=True)
    assert owner_and_mode(tmp_path / "run/kachecks") == (0, 0, 0o750)


def test_units_verify_and_only_the_spool_flush_timer_is_enabled(installed):
    units = installed_units()
    done = subprocess.run(["systemd-analyze", "verify", *map(str, units)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    flush, timer, worker = units
    assert "ExecStart=/usr/bin/kachecks spool flush" in flush.read_text()
    assert "Type=oneshot" in flush.read_text()
    assert "ExecStart=/usr/bin/kachecks worker" in worker.read_text()
    wants = Path("/etc/systemd/system/timers.target.wants/kachecks-spool-flush.timer")
    assert os.readlink(wants) == str(timer)
    enabled = [p.name for p in Path("/etc/systemd/system").rglob("kachecks*")]
    assert enabled == [timer.name]


def test_every_executable_has_a_man_page_made_from_its_help(installed):
    for name in executables():
        with gzip.open(f"/usr/share/man/man1/{name}.1.gz", "rt") as f:
            page = f.read().replace("\\-", "-")
        assert re.search(rf'^\.SH "?NAME"?\n{name} - ', page, re.M), name
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", run(name, "--help").stdout))
        assert "--help" in options, name
        missing = sorted(o for o in options if o not in page)
        assert not missing, f"{name}(1) lacks {missing}"


def test_man_pages_render_without_warnings(installed):
    for name in executables():
        done = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                               f"/usr/share/man/man1/{name}.1.gz"],
                              capture_output=True, text=True, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0 and done.stderr == "", (name, done.stderr)
        assert "Traceback" not in done.stdout, name


def test_man_pages_keep_every_option_and_example_of_every_command(installed):
    """`man -l` output: each option an entry of its own, examples line for line."""
    rendered = {}
    lost = {}
    for words in every_command(run, executables()):
        page = man_page_of(words)
        if page not in rendered:
            text, warnings = render_man(f"/usr/share/man/man1/{page}.1.gz")
            assert warnings == "", (page, warnings)
            rendered[page] = text
        problems = man_problems(run(*words, "--help").stdout, rendered[page])
        if problems:
            lost[" ".join(words)] = problems
    assert len(rendered) == len(executables())
    assert lost == {}


def test_every_doc_path_the_package_mentions_exists(installed):
    mentioned = set()
    for path in installed_paths():
        if os.path.isfile(path) and not path.startswith("/usr/lib/python3"):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", errors="replace") as f:
                text = f.read().replace("\\-", "-")
            mentioned |= set(re.findall(r"/usr/share/doc/kachecks/[\w./-]*\w", text))
    assert "/usr/share/doc/kachecks/examples/keepalived.conf" in mentioned
    missing = sorted(p for p in mentioned if not os.path.exists(p)
                     and not os.path.exists(p + ".gz"))
    assert not missing


def test_example_and_readme_debian_are_shipped(installed):
    example = Path("/usr/share/doc/kachecks/examples/keepalived.conf").read_text()
    assert "enable_script_security" in example
    with gzip.open("/usr/share/doc/kachecks/README.Debian.gz", "rt") as f:
        assert "keepalived_script" in f.read()


def test_maintainer_scripts_create_no_user_and_touch_no_keepalived_config(installed):
    for kind in ("preinst", "postinst", "prerm", "postrm"):
        script = Path(f"/var/lib/dpkg/info/{PACKAGE}.{kind}")
        text = script.read_text() if script.exists() else ""
        for word in ("adduser", "useradd", "keepalived_script", "/etc/keepalived"):
            assert word not in text, (script, word)
    assert not [p for p in installed_paths() if p.startswith("/etc/keepalived")]
