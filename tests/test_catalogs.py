"""Every user-facing string has an English translation with the same placeholders,
and the Chinese catalog covers the FAB strings FAB's own zh catalog misses."""
import os
import re
import subprocess
import sys

from babel.messages.pofile import read_po

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACEHOLDER = re.compile(r"%\(\w+\)[sdf]|%[sdf]")


def _extract(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.check_call(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "lazy_gettext", "-k", "N_", "-o", str(pot), "."],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    with open(pot, "rb") as fh:
        return read_po(fh)


def _catalog(lang):
    with open(os.path.join(ROOT, "translations", lang, "LC_MESSAGES", "messages.po"), "rb") as fh:
        return read_po(fh)


def _key(msg):
    return msg.id if isinstance(msg.id, str) else msg.id[0]


def test_every_string_in_the_code_has_an_english_translation(tmp_path):
    pot = _extract(tmp_path)
    en = {_key(m): m for m in _catalog("en") if m.id}
    missing = [_key(m) for m in pot if m.id and (_key(m) not in en or not en[_key(m)].string)]
    assert not missing, "run `flask translate update` and translate: %r" % missing[:20]


def test_english_translations_keep_the_placeholders():
    for m in _catalog("en"):
        if not m.id or not m.string:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert sorted(PLACEHOLDER.findall(ids[0])) == sorted(PLACEHOLDER.findall(strings[0])), m.id


def test_chinese_catalog_covers_fab_strings_missing_from_fabs_zh():
    zh = {_key(m): m.string for m in _catalog("zh") if m.id}
    for msgid in ["Add", "Edit", "Delete", "Show", "Are you sure you want to delete this item?"]:
        assert zh.get(msgid), msgid
