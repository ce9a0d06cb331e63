"""The docs stand alone: links resolve, every page is shipped, one reference deployment."""

import re
from pathlib import Path

import pytest

from harness.docs import anchors, broken_links, every_command, guide_steps, links, long_options, slug
from harness.entrypoints import names as executables
from harness.lab import reference as lab
from harness.peers.cli import run

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHIPPED_DOCS = REPO / "packaging/debian/kachecks.docs"
EXAMPLES = REPO / "packaging/debian/examples"

# The reference deployment (docs/reference.md): every address a page may show.
ADDRESSES = {
    "192.168.8.0": "the network",
    "192.168.8.10": "the lab's client",
    "192.168.8.25": "the mail relay",
    "192.168.8.100": "lvs1",
    "192.168.8.101": "web1",
    "192.168.8.102": "web2",
    "192.168.8.110": "lvs2",
    "192.168.8.142": "the VIP",
}
VIP = "192.168.8.142"
VRID = "50"
ADDRESS = re.compile(r"192\.168\.8\.\d+")


@pytest.fixture(scope="module")
def helps():
    """Every command's --help text: they are pages too (the man pages are made of them)."""
    return {" ".join(words): run(*words, "--help").stdout
            for words in every_command(run, executables())}


def texts(helps):
    """(where, text) of every page, example, packaged text and --help."""
    files = [*PAGES, *sorted(EXAMPLES.iterdir()), REPO / "packaging/debian/README.Debian",
             REPO / "packaging/kachecks.toml", *sorted((REPO / "packaging/debian/man-include").iterdir())]
    return [(str(f.relative_to(REPO)), f.read_text()) for f in files] + [
        (f"{words} --help", text) for words, text in helps.items()]


def test_every_relative_link_in_the_docs_resolves():
    assert broken_links(PAGES) == []


def test_links_stay_inside_what_the_package_ships():
    """README.md and docs/ are installed side by side under /usr/share/doc/kachecks,
    so a link that leaves them works in the repository only."""
    shipped = [REPO / "README.md", REPO / "docs"]
    for page in PAGES:
        for number, target in links(page.read_text()):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            dest = (page.parent / target.partition("#")[0]).resolve()
            assert any(dest == s or s in dest.parents for s in shipped), f"{page}:{number}: {target}"


def test_the_package_ships_the_readme_and_every_page():
    assert SHIPPED_DOCS.read_text().split() == ["README.md", "docs"]
    assert not [p for p in (REPO / "docs").iterdir() if p.suffix != ".md"]


def test_the_link_checker_finds_a_missing_page_and_a_missing_heading(tmp_path):
    page = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# Exit codes\n\n## `kachecks-http`\n")
    page.write_text("[x](b.md#exit-codes) [y](b.md#kachecks-http) [z](c.md) [w](b.md#nope)\n"
                    "`[not](a-link.md)`\n\n```\n[nor](this.md)\n```\n[web](https://example.org/x)\n")
    assert [p.split(": ", 1)[1] for p in broken_links([page])] == [
        f"c.md: no such file {tmp_path / 'c.md'}", "b.md#nope: no heading #nope in b.md"]


def test_anchors_follow_githubs_slugs():
    text = "# Configuration: `/etc/kachecks/kachecks.toml`\n## keepalived -t\n## Notes\n## Notes\n"
    assert anchors(text) == {"configuration-etckacheckskacheckstoml", "keepalived--t", "notes",
                             "notes-1"}


def test_every_address_is_one_of_the_reference_deployments(helps):
    strays = [(where, a) for where, text in texts(helps) for a in ADDRESS.findall(text)
              if a not in ADDRESSES]
    assert strays == []


def test_every_virtual_server_vip_and_vrid_is_the_reference_ones(helps):
    for where, text in texts(helps):
        for address in re.findall(r"virtual_server\s+(\d+\.\d+\.\d+\.\d+)", text):
            assert address == VIP, where
        for block in re.findall(r"virtual_ipaddress\s*\{([^}]*)\}", text):
            assert ADDRESS.findall(block) == [VIP], where
        for vrid in re.findall(r"virtual_router_id\s+(\d+)", text):
            assert vrid == VRID, where
        # keepalived's names of a virtual server in notify arguments and FIFO lines
        for address in re.findall(r"\bVS \[([\d.]+)\]|RS \[[\d.]+\]:\w+:\d+ \[([\d.]+)\]", text):
            assert VIP in address, where


def test_the_lab_is_the_reference_deployment():
    assert set(lab.HOSTS.values()) <= set(ADDRESSES)
    assert (lab.VIP, str(lab.VRID)) == (VIP, VRID)
    assert {ADDRESSES[lab.HOSTS[h]] for h in lab.LDAP_SERVERS} == {"web1", "web2"}


def test_the_reference_names_every_option_of_every_command(helps):
    reference = (REPO / "docs/reference.md").read_text()
    missing = {words: sorted(o for o in long_options(text) if o not in reference)
               for words, text in helps.items()}
    assert {w: m for w, m in missing.items() if m} == {}


def test_the_install_guide_is_commands_and_markers_in_order():
    steps = guide_steps((REPO / "docs/install.md").read_text())
    assert [text for kind, text in steps if kind == "marker"] == [
        "director-running", "checks-run-as-keepalived_script", "new-release", "upgraded"]
    commands = "".join(text for kind, text in steps if kind == "sh")
    order = ["apt-get update", "scripts/build-deb", "apt-get install ./packaging/out/",
             "/etc/kachecks/kachecks.toml", "keepalived -t", "systemctl restart keepalived",
             "useradd", "apt-get purge kachecks"]
    positions = [commands.index(needle) for needle in order]
    assert positions == sorted(positions)
    assert "git clone" not in commands  # the checkout is where the guide starts


def test_the_guide_installs_every_build_dependency():
    control = (REPO / "packaging/debian/control").read_text()
    build_depends = control.partition("Build-Depends:")[2].partition("\n\n")[0].split("Standards")[0]
    wanted = {re.sub(r"[\s(].*", "", d.strip()) for d in build_depends.split(",") if d.strip()}
    wanted = {"debhelper" if w == "debhelper-compat" else w for w in wanted}
    install = next(text for kind, text in guide_steps((REPO / "docs/install.md").read_text())
                   if kind == "sh" and "build-essential" in text)
    assert wanted | {"build-essential", "git"} <= set(install.split())


CITATION = re.compile(r'(docs/[\w-]+\.md), "([^"]+)"(?:[^"\n]{0,20}? and "([^"]+)")?')
SOURCES = ["kachecks", "tests", "harness", "scripts", "packaging", "docs", "README.md"]


def source_texts():
    for top in SOURCES:
        path = REPO / top
        for file in [path] if path.is_file() else sorted(path.rglob("*")):
            if file.is_file() and file.suffix in ("", ".py", ".md", ".h2m", ".conf", ".cfg", ".toml"):
                yield file, file.read_text(errors="replace")


def test_code_and_docs_cite_only_what_the_repository_holds():
    outside = ("SPEC " + "§", "interfaces " + "§", "keepalived-" + "interfaces.md", "../" + "shared")
    found = [(str(f.relative_to(REPO)), word) for f, text in source_texts()
             for word in outside if word in text]
    assert found == []


def test_every_cited_section_of_the_docs_exists():
    cited = 0
    for file, text in source_texts():
        for match in CITATION.finditer(text):
            page = REPO / match.group(1)
            assert page.exists(), (file, match.group(0))
            headings = anchors(page.read_text())
            for title in filter(None, match.group(2, 3)):
                cited += 1
                assert slug(title) in headings, (str(file.relative_to(REPO)), match.group(0))
    assert cited >= 20
