"""The Prometheus alert rules as the package installs them (docs/monitoring.md)."""

from pathlib import Path

from harness.peers.prometheus import promtool

INSTALLED = Path("/usr/share/doc/kachecks/examples/kachecks-alerts.yml")
CASES = Path(__file__).resolve().parents[1] / "monitoring/kachecks-alerts.test.yml"
TOP = Path(__file__).resolve().parents[2]
# The repository's packaging/debian is the source package's debian/ (scripts/build-deb),
# where autopkgtest runs this file.
SHIPPED = next((path for path in (TOP / "debian/examples/kachecks-alerts.yml",
                                  TOP / "packaging/debian/examples/kachecks-alerts.yml")
                if path.exists()), TOP / "packaging/debian/examples/kachecks-alerts.yml")


def test_the_rules_are_installed_as_shipped_for_a_plain_copy(installed):
    assert INSTALLED.read_bytes() == SHIPPED.read_bytes()  # not compressed: cp works
    assert INSTALLED.stat().st_mode & 0o777 == 0o644


def test_promtool_accepts_the_installed_rules_and_every_case_passes_on_them(installed,
                                                                              tmp_path):
    proc = promtool("check", "rules", str(INSTALLED))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = tmp_path / CASES.name
    text = CASES.read_text()
    relative = "../../packaging/debian/examples/kachecks-alerts.yml"
    assert relative in text
    cases.write_text(text.replace(relative, str(INSTALLED)))
    proc = promtool("test", "rules", cases.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
