"""HTML -> PDF for certificates: xhtml2pdf under a resource policy, with every
pisa warning treated as an error.  No Flask here, so that render processes (a
batch renders chunks in parallel: xhtml2pdf holds a process-wide lock around
each render) import only this and xhtml2pdf.

The CJK font is parsed ONCE per process.  xhtml2pdf 0.2.28 caches a parsed
@font-face font, but still reads and md5-hashes the whole file on every render
to see whether it changed (5 MB for WenQuanYi Micro Hei: ~10 ms of a ~45 ms
certificate).  So `register_font()` parses the configured font with reportlab
itself and registers it under the name xhtml2pdf gives the face of a @font-face
family ("<family>_00"), and the template's @font-face names a small stand-in
file in the asset folder: xhtml2pdf finds the face already registered (by
someone other than itself) and uses it.  The renderer therefore reads nothing
but the asset folder.  Should a later xhtml2pdf name faces differently, it would
try to parse the stand-in, fail, and the render fails loudly (warnings are
errors) -- it cannot silently print boxes.
"""
import functools
import io
import logging
import os
import threading

FONT_FAMILY = "cecjk"
# The face name xhtml2pdf registers for "@font-face { font-family: cecjk }"
# in normal weight and style (context.loadFont: "%s_%d%d" % (name, bold, italic)).
FONT_FACE = FONT_FAMILY + "_00"
FONT_STAND_IN = "cjk-font.ttf"

_font_lock = threading.Lock()
_registered = {}


def register_font(path):
    """Parse the TrueType font at `path` and register it as FONT_FACE, once per
    process and file version."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if _registered.get(FONT_FACE) == key:
        return
    with _font_lock:
        if _registered.get(FONT_FACE) == key:
            return
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        pdfmetrics.registerFont(TTFont(FONT_FACE, path))
        _registered[FONT_FACE] = key


def stand_in_path(base_dir):
    return os.path.join(base_dir, FONT_STAND_IN)


@functools.lru_cache(maxsize=8)
def policy_for(base_dir):
    """The renderer may read `base_dir` (the app's certificate assets) and fetch
    nothing remote, with every size and time limit of the server policy on."""
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    return ResourceAccessPolicy.server(
        base_dir=base_dir, allow_remote=False, allow_private_networks=False, max_resources=10,
    )


class _Warnings(logging.Handler):
    """xhtml2pdf reports some problems only to its logger (a stylesheet the
    policy refused, say), not in the result's warning count: collect them too."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages = []

    def emit(self, record):
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def render(html, base_dir, font):
    """(PDF bytes, None) or (None, problems): any pisa error or warning is a
    problem -- a font it could not embed, a resource the policy refused."""
    from xhtml2pdf import pisa

    register_font(font)
    out = io.BytesIO()
    logger = logging.getLogger("xhtml2pdf")
    collected = _Warnings()
    logger.addHandler(collected)
    try:
        result = pisa.CreatePDF(html, dest=out, resource_policy=policy_for(base_dir), encoding="utf-8")
    finally:
        logger.removeHandler(collected)
    problems = [str(msg) for _mode, _line, msg, _frag in result.log] + collected.messages
    if result.err or result.warn or problems:
        return None, "; ".join(dict.fromkeys(problems))[:1000] or "xhtml2pdf error"
    return out.getvalue(), None
