"""Every document the repository names exists in the repository.

Checked: each ``docs/<name>.md`` path written anywhere in the README, the docs, the code, the tests,
the scripts and the benchmarks (from the repository root, or from the file when it starts with ``.``:
``shared/docs/x.md`` names a file a user of the repository does not have), and each relative link of
every Markdown file (``[text](path)`` and ``[label]: path``, from the linking file). Web addresses
(with a scheme) are not followed; paths deeper than ``docs/<name>.md`` are not checked (test data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Where ``docs/<name>.md`` mentions are looked for (besides the README and docs/).
SOURCE_DIRS = ("src", "tests", "scripts", "images", "bench", "Dockerfiles", "examples")
SOURCE_SUFFIXES = {".py", ".md", ".sh", ".toml", ".cfg", ".txt", ".yml", ".yaml", ".Dockerfile", ".pyi"}
SKIPPED_PARTS = {"__pycache__", ".git", "golden", "node_modules"}

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
#: ``docs/<name>.md``, with whatever path leads to it (``shared/docs/...``, ``../docs/...``).
_DOCS_PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*docs/[\w.-]+\.md)(?![\w/-])")
_INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def markdown_files(root: Path) -> list[Path]:
    """The README, every Markdown file under docs/ and the other Markdown files of :data:`SOURCE_DIRS`."""
    files = [root / "README.md"] if (root / "README.md").exists() else []
    files += sorted((root / "docs").rglob("*.md"))
    return files + [p for p in source_files(root) if p.suffix == ".md"]


def source_files(root: Path) -> Iterator[Path]:
    """Text files of :data:`SOURCE_DIRS` (and the Makefile) that may name a document."""
    for name in ("Makefile", "pyproject.toml"):
        if (root / name).is_file():
            yield root / name
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*")):
            if SKIPPED_PARTS.intersection(path.relative_to(root).parts) or not path.is_file():
                continue
            if path.suffix in SOURCE_SUFFIXES or path.name.endswith(".Dockerfile"):
                yield path


def docs_mentions(text: str) -> Iterator[str]:
    """Each ``docs/<name>.md`` path in ``text`` (web addresses left out)."""
    for match in _DOCS_PATH.finditer(_URL.sub(" ", text)):
        yield match.group(1)


def relative_links(text: str) -> Iterator[str]:
    """Each Markdown link target of ``text`` that is a path (no scheme, not only an anchor), anchor cut."""
    for pattern in (_INLINE_LINK, _REFERENCE_LINK):
        for match in pattern.finditer(text):
            target = match.group(1)
            if _SCHEME.match(target) or target.startswith("#"):
                continue
            yield target.split("#", 1)[0].split("?", 1)[0]


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def dead_references(root: Path, skip: Iterable[Path] = ()) -> list[str]:
    """``"<file>: <reference>"`` for each named document or relative link that is not in ``root``."""
    skipped = {p.resolve() for p in skip}
    dead: list[str] = []
    md_files = markdown_files(root)
    files = [*md_files, *(p for p in source_files(root) if p not in md_files)]
    for path in files:
        if path.resolve() in skipped:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(root).as_posix()
        for mention in docs_mentions(text):
            target = (path.parent if mention.startswith(".") else root) / mention
            if not (_inside(root, target) and target.is_file()):
                dead.append(f"{where}: {mention}")
        if path in md_files:
            for link in relative_links(text):
                target = path.parent / link if link else path
                if not (_inside(root, target) and target.exists()):
                    dead.append(f"{where}: ({link})")
    return sorted(set(dead))


def test_every_named_document_and_relative_link_exists() -> None:
    dead = dead_references(ROOT, skip=[Path(__file__)])
    assert not dead, "references to files the repository does not have:\n" + "\n".join(dead)


def test_the_design_references_the_code_names_are_in_docs() -> None:
    for name in ("flyte-contract.md", "reliability-security.md", "test-environment.md"):
        assert (ROOT / "docs" / name).is_file(), name


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# there\n\nSee [sub](sub/deep.md#part) and [up](../README.md).\n")
    (tmp_path / "docs" / "sub" / "deep.md").write_text("[back](../there.md) [web](https://example.com/docs/x.md)\n")
    (tmp_path / "README.md").write_text("[there](docs/there.md) [anchor](#top) [mail](mailto:a@example.com)\n")
    (tmp_path / "src" / "mod.py").write_text('"""Rules: docs/there.md section 2; data: docs/a/b/x.md."""\n')
    (tmp_path / "src" / "pkg").mkdir()
    (tmp_path / "src" / "pkg" / "README.md").write_text("see [plugins](../../docs/there.md), ../../docs/there.md\n")
    return tmp_path


def test_the_checker_passes_a_tree_whose_references_all_resolve(tree: Path) -> None:
    assert dead_references(tree) == []


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("src/mod.py", '"""See docs/gone.md."""\n', "src/mod.py: docs/gone.md"),
        ("src/mod.py", "# shared/docs/there.md, point 4\n", "src/mod.py: shared/docs/there.md"),
        ("src/mod.py", "# ../../docs/there.md\n", "src/mod.py: ../../docs/there.md"),
        ("docs/there.md", "[gone](gone.md)\n", "docs/there.md: (gone.md)"),
        ("docs/there.md", "[out](../../outside.md)\n", "docs/there.md: (../../outside.md)"),
        ("README.md", "[ref]: docs/missing.md\n", "README.md: (docs/missing.md)"),
        ("README.md", "as docs/missing.md says\n", "README.md: docs/missing.md"),
    ],
)
def test_the_checker_reports_each_dead_reference(tree: Path, path: str, text: str, expected: str) -> None:
    with (tree / path).open("a") as fh:
        fh.write(text)
    assert expected in dead_references(tree)
