"""The documentation is code: every shell and Python block of README.md and docs/*.md runs here.

A ```bash, ```sh or ```python block runs from the repository root, with this venv's `msabench` first on
PATH (bash and sh blocks as `bash -e` / `sh -e` scripts, Python blocks with this interpreter), and must
exit 0: a documented command the code refuses fails this test. A block that cannot run here says why,
in an HTML comment on the line right before its opening fence:

    <!-- not run: needs the user's MMSA pickles -->

Blocks that read the real CMU-MOSI file (../shared/data/mosi-utterance.npz) run only where it exists.
`mktemp` writes under pytest's temporary folder (TMPDIR), and no block may write into the repository.
A ```toml block must parse; one that is a protocol file must pass msabench's protocol check, and one
marked `<!-- file: PATH -->` must equal that file. Also checked: README's length and Quick start, that
README lists every shipped protocol and every command, and that relative links and anchors resolve.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
REAL_DATA = "../shared/data/mosi-utterance.npz"  # relative to the repository root, as the docs write it
RUNNABLE = {"bash": ["bash", "-e", "-o", "pipefail", "-c"], "sh": ["sh", "-e", "-c"], "python": [sys.executable, "-c"]}
NOT_SHELL_NAMES = {"shell", "console", "zsh", "shell-session", "bash-session", "py", "python3", "pycon"}
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
FILE_MARK = re.compile(r"<!--\s*file:\s*(\S+)\s*-->")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")
README_MAX_LINES = 320
BLOCK_TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    before: str  # the line right before the opening fence

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        m = NOT_RUN.fullmatch(self.before.strip())
        return m.group(1) if m else None

    @property
    def file(self) -> str | None:
        m = FILE_MARK.fullmatch(self.before.strip())
        return m.group(1) if m else None


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a page (or of `text`, a part of it)."""
    lines = (page.read_text() if text is None else text).split("\n")
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        assert j < len(lines), f"{page.relative_to(ROOT)}:{i + 1}: a code block that is never closed"
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j])
        found.append(Block(page, i + 1, lang.lower(), code + "\n", lines[i - 1] if i else ""))
        i = j + 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
TO_RUN = [b for b in ALL if b.lang in RUNNABLE]
TOML = [b for b in ALL if b.lang == "toml"]


def section(text: str, heading: str) -> str:
    """The text under `## heading` up to the next heading of level 2 or higher."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, flags=re.M | re.S)
    assert m, f"no '## {heading}' section"
    return m.group(1)


def test_the_pages_exist_and_every_marker_sits_on_a_fence():
    assert (ROOT / "docs" / "index.md").exists() and len(PAGES) > 2
    for page in PAGES:
        lines = page.read_text().split("\n")
        for n, line in enumerate(lines):
            for pattern in (NOT_RUN, FILE_MARK):
                m = pattern.search(line)
                if not m:
                    continue
                nxt = lines[n + 1] if n + 1 < len(lines) else ""
                assert FENCE.match(nxt), f"{page.relative_to(ROOT)}:{n + 1}: a marker must be on the line right " \
                                         f"before a block's opening fence"
                if pattern is NOT_RUN:
                    assert m.group(1), f"{page.relative_to(ROOT)}:{n + 1}: 'not run' needs a reason"
                    assert FENCE.match(nxt).group(3).lower() in RUNNABLE, \
                        f"{page.relative_to(ROOT)}:{n + 1}: 'not run' marks a block that would not run anyway"
    for b in ALL:
        assert b.lang not in NOT_SHELL_NAMES, f"{b.where}: write ```bash or ```python (```{b.lang} is never run)"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["TMPDIR"] = str(tmp_path_factory.mktemp("docs-blocks"))  # mktemp -d lands here
    e.setdefault("MSABENCH_CACHE", str(tmp_path_factory.mktemp("docs-cache")))  # conftest sets it already
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return e


def _repository_state() -> set[tuple[str, int, int]]:
    """What a block could write by mistake: the top level, results/ and leaderboard/."""
    state = {(p.name, 0, 0) for p in ROOT.iterdir()}
    for folder in ("results", "leaderboard", "docs", "protocols", "submissions"):
        for p in (ROOT / folder).rglob("*"):
            if p.is_file():
                st = p.stat()
                state.add((str(p.relative_to(ROOT)), st.st_mtime_ns, st.st_size))
    return state


@pytest.mark.parametrize("block", TO_RUN, ids=[b.where for b in TO_RUN])
def test_block_runs(block: Block, env):
    if block.not_run is not None:
        pytest.skip(f"marked not run: {block.not_run}")
    if REAL_DATA in block.code and not (ROOT / REAL_DATA).exists():
        pytest.skip(f"needs the real CMU-MOSI file {REAL_DATA}, which is not on this machine")
    before = _repository_state()
    proc = subprocess.run([*RUNNABLE[block.lang], block.code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, (f"{block.where}: the documented {block.lang} block exits with {proc.returncode}\n"
                                  f"{block.code}\nstderr (end):\n{proc.stderr[-3000:]}\nstdout (end):\n{proc.stdout[-1500:]}")
    written = _repository_state() - before
    assert not written, f"{block.where}: the block wrote into the repository: {sorted(w[0] for w in written)[:10]}"


@pytest.mark.parametrize("block", TOML, ids=[b.where for b in TOML])
def test_toml_block_parses(block: Block):
    from msabench import protocols

    data = tomllib.loads(block.code)  # a TOMLDecodeError names the line
    if block.file is not None:
        path = ROOT / block.file
        assert path.exists(), f"{block.where}: marks itself as {block.file}, which does not exist"
        assert path.read_text() == block.code, f"{block.where}: differs from {block.file}, which it shows"
    if "dataset" in data and "missing" in data:  # a protocol file: what `msabench run --protocol FILE` checks
        protocols.parse(data, block.where)


def test_readme_is_short_and_its_quick_start_is_exactly_two_commands():
    text = README.read_text()
    n = len(text.splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; at most {README_MAX_LINES}: move detail to docs/"
    quick = blocks(README, section(text, "Quick start"))
    commands = [line.split("#", 1)[0].strip() for b in quick if b.lang in RUNNABLE for line in b.code.splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"], "README's Quick start must be `make run`, `make test`"


def test_readme_lists_every_shipped_protocol_and_every_command():
    from msabench import cli, protocols

    text = README.read_text()
    table = section(text, "Protocols")
    shipped = protocols.available()
    assert len(shipped) >= 20
    missing = [name for name in shipped if not re.search(rf"^\| `{re.escape(name)}` \|", table, flags=re.M)]
    assert not missing, f"README's protocol table has no row for {missing}"
    full = (ROOT / "docs" / "protocols.md").read_text()
    assert not [name for name in shipped if f"`{name}`" not in full], "docs/protocols.md leaves out a protocol"

    def commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    inner = commands(sub, f"{prefix} {name}")
                    out.extend(inner or [f"{prefix} {name}"])
        return out

    glance = section(text, "The CLI at a glance")
    every = commands(cli.parser(), "msabench")
    assert {"msabench run", "msabench data embed", "msabench masks export", "msabench init"} <= set(every)
    missing = [c for c in every if not re.search(rf"^\| `{re.escape(c)}\b", glance, flags=re.M)]
    assert not missing, f"README's CLI at a glance has no line for {missing}"


def slug(heading: str) -> str:
    """GitHub's (and, for these headings, MkDocs') anchor of a heading."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", page.read_text(), flags=re.M | re.S)  # no headings in code
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+?)\s*$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_and_anchors_resolve(page: Path):
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", page.read_text(), flags=re.M | re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target}: no such file"
        if page.parent == ROOT / "docs" and path:
            assert dest.parent == page.parent, f"{page.relative_to(ROOT)}: link to {target} leaves the site (docs/)"
        if anchor:
            assert anchor in anchors(dest), f"{page.relative_to(ROOT)}: link to {target}: no such heading in " \
                                            f"{dest.relative_to(ROOT)}"


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[test]' installs it)")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
