"""The documentation holds together: every image a document names exists and is made by
scripts/screenshots.py, every relative link (and its #anchor) resolves, the README stays
short, and nothing points outside the repository."""
import os
import re
import unicodedata
from urllib.parse import unquote

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
IMAGES = os.path.join(DOCS, "images")
MANUAL = os.path.join(DOCS, "使用手册.md")
README = os.path.join(ROOT, "README.md")

# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"(!?)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMG_TAG = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def documents():
    paths = [README]
    for dirpath, _dirs, files in os.walk(DOCS):
        paths += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".md")]
    return paths


def _prose_lines(path):
    """The lines outside fenced code blocks (code is not rendered as links)."""
    inside = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line):
                inside = not inside
                continue
            if not inside:
                yield line.rstrip("\n")


def links(path):
    """(is_image, target) of every Markdown link and <img> in the document's prose."""
    out = []
    for line in _prose_lines(path):
        text = re.sub(r"`[^`]*`", "", line)  # inline code is not a link either
        out += [(bang == "!", target) for bang, target in LINK.findall(text)]
        out += [(True, src) for src in IMG_TAG.findall(text)]
    return out


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, inline markup dropped, characters
    other than letters, digits, spaces, hyphens and underscores removed (CJK letters
    stay, full-width punctuation goes), spaces turned into hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_~]{1,3}(\S[^*_~]*?)[*_~]{1,3}", r"\1", text)
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LN" or cat in ("Mn", "Mc"):
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(path):
    seen = {}
    result = set()
    for line in _prose_lines(path):
        m = HEADING.match(line)
        if not m:
            continue
        base = github_anchor(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def _is_relative(target):
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("//")


ALL_DOCS = documents()


def test_anchor_rule_matches_github():
    assert github_anchor("6. Background jobs (Redis + RQ)") == "6-background-jobs-redis--rq"
    assert github_anchor("附录：演示账号") == "附录演示账号"
    assert github_anchor("在列表中查找（筛选）") == "在列表中查找筛选"
    assert github_anchor("导出 Excel") == "导出-excel"
    assert github_anchor("The row scope: `app/security/scope.py`") == "the-row-scope-appsecurityscopepy"
    assert "在列表中查找筛选" in anchors(MANUAL)


def test_the_documents_are_there():
    names = {os.path.relpath(p, ROOT) for p in ALL_DOCS}
    for expected in ("README.md", "docs/使用手册.md", "docs/deploy.md", "docs/architecture.md",
                     "docs/performance.md"):
        assert expected in names


def test_readme_is_short():
    with open(README, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("path", ALL_DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_reference_outside_the_repository(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert "../shared" not in text
    assert not re.search(r"(^|[\s(`'\"])/work/", text), "a /work path in " + path


@pytest.mark.parametrize("path", ALL_DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_and_images_resolve(path):
    problems = []
    for is_image, target in links(path):
        if not _is_relative(target):
            continue
        file_part, _hash, anchor = unquote(target).partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not dest.startswith(ROOT + os.sep):
            problems.append(f"{target}: outside the repository")
            continue
        if not os.path.exists(dest):
            problems.append(f"{target}: {os.path.relpath(dest, ROOT)} does not exist")
            continue
        if is_image and not dest.lower().endswith((".png", ".jpg", ".jpeg", ".svg", ".gif")):
            problems.append(f"{target}: not an image")
        if anchor and dest.endswith(".md") and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {os.path.relpath(dest, ROOT)}")
    assert not problems, "\n".join(problems)


def test_the_manual_shows_screenshots_of_every_role():
    images = [t for is_image, t in links(MANUAL) if is_image]
    assert len(images) >= 30
    with open(MANUAL, encoding="utf-8") as f:
        text = f.read()
    for role in ("个人", "单位经办", "单位管理员", "人社局经办", "研修承办单位", "行业主管部门", "系统管理员"):
        assert re.search(rf"^## {role}$", text, re.M), f"no section for {role}"


def _script_names():
    """The PNG names scripts/screenshots.py writes."""
    with open(os.path.join(ROOT, "scripts", "screenshots.py"), encoding="utf-8") as f:
        src = f.read()
    names = set(re.findall(r"\.shot\(\s*\"([\w-]+)\"", src))
    names |= set(re.findall(r"os\.path\.join\(s\.out,\s*\"([\w-]+)\"\)", src))
    return names


def test_every_image_is_made_by_the_screenshot_script_and_named_by_a_document():
    made = _script_names()
    named = set()
    for path in ALL_DOCS:
        for is_image, target in links(path):
            if is_image and _is_relative(target):
                dest = os.path.normpath(os.path.join(os.path.dirname(path), unquote(target)))
                if os.path.dirname(dest) == IMAGES:
                    named.add(os.path.splitext(os.path.basename(dest))[0])
    assert named, "no document names an image under docs/images"
    assert named <= made, f"named but not made by scripts/screenshots.py: {sorted(named - made)}"
    on_disk = {os.path.splitext(f)[0] for f in os.listdir(IMAGES) if f.endswith(".png")}
    assert on_disk <= made, f"stale images nothing makes: {sorted(on_disk - made)}"
    assert on_disk <= named, f"images no document shows: {sorted(on_disk - named)}"


def test_images_stay_small():
    total = sum(os.path.getsize(os.path.join(IMAGES, f)) for f in os.listdir(IMAGES))
    assert total < 5 * 1024 * 1024, f"docs/images holds {total / 1e6:.1f} MB"
    for f in os.listdir(IMAGES):
        with open(os.path.join(IMAGES, f), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", f + " is not a PNG"
