"""The docs as installed: every page of the repository, links that resolve where they are."""

from pathlib import Path

from harness.docs import broken_links

DOC = Path("/usr/share/doc/kachecks")
REPO = Path(__file__).resolve().parents[2]


def installed_pages():
    return sorted(DOC.rglob("*.md"))


def test_every_page_of_the_repository_is_installed_uncompressed(installed):
    pages = {p.relative_to(DOC) for p in installed_pages()}
    wanted = {Path("README.md")} | {p.relative_to(REPO) for p in (REPO / "docs").glob("*.md")}
    assert pages == wanted
    assert not list(DOC.rglob("*.md.gz"))


def test_every_link_of_the_installed_docs_resolves(installed):
    pages = installed_pages()
    assert len(pages) >= 10
    assert broken_links(pages) == []
