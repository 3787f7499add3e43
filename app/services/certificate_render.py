"""HTML -> PDF for certificates: xhtml2pdf under a resource policy, with every
pisa warning treated as an error.  No Flask here, so that render processes (a
batch renders chunks in parallel: xhtml2pdf holds a process-wide lock around
each render) import only this and xhtml2pdf."""
import functools
import io
from pathlib import Path


@functools.lru_cache(maxsize=8)
def policy_for(base_dir, font):
    """The renderer may read `base_dir` (the app's certificate assets) and the one
    font file, and fetch nothing remote, with every size and time limit on."""
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    return ResourceAccessPolicy.server(
        base_dir=base_dir, extra_roots=(Path(font),), allow_remote=False,
        allow_private_networks=False, max_resources=10,
    )


def render(html, policy):
    """(PDF bytes, None) or (None, problems): any pisa error or warning is a
    problem -- a font it could not embed, a resource the policy refused."""
    from xhtml2pdf import pisa

    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, resource_policy=policy, encoding="utf-8")
    if result.err or result.warn:
        return None, "; ".join(str(msg) for _mode, _line, msg, _frag in result.log)[:1000] or "xhtml2pdf error"
    return out.getvalue(), None


def render_in_worker(html, base_dir, font):
    """Entry point of a render process (see services.certificates.batch_pdf).
    The font is parsed once per process and kept by reportlab's registry."""
    return render(html, policy_for(base_dir, font))
