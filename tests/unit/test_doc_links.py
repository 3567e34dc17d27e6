"""Links between README.md and docs/*.md lead somewhere: the file exists and, for an anchor,
the heading does (GitHub's anchors: lowercase, punctuation dropped, spaces to '-')."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    out, code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            code = not code
        elif not code and line.startswith("#"):
            out.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return out


def links(page: Path):
    for m in re.finditer(r"\]\(([^)\s]+)\)", page.read_text()):
        if not re.match(r"[a-z]+:", m.group(1)):
            yield m.group(1)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_to_a_file_and_heading(page):
    broken = []
    for link in links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or (anchor and target.suffix == ".md"
                                   and anchor not in anchors(target)):
            broken.append(link)
    assert broken == []


def test_the_readme_is_short_and_starts_from_init():
    text = (ROOT / "README.md").read_text()
    assert len(text) <= 12000
    assert "tinsnip init" in text and "docs/inventory.md" in text


def test_no_dated_test_runs_in_the_docs():
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"\b\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\w* "
                             r"20\d\d\b", text), page.name
        assert not re.search(r"\bcommit [0-9a-f]{7,}\b", text), page.name
