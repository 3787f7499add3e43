"""证明材料: proof files of a declaration.

PDF, JPG or PNG, at most MAX_SIZE bytes each.  The type is decided by the file's
first bytes (its magic number), never by its name or the browser's content type:
a text file named .pdf is refused.  Files are stored under UPLOAD_DIR (outside the
web root) by content hash and are only ever served by a view that loaded the
Attachment through the row scope (`open_scoped`).
"""
import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.extensions import db
from app.models import Attachment
from app.security.scope import get_scoped
from app.services import approval, audit
from app.services.errors import InvalidTransition, OutOfScope, ValidationFailed

MAX_SIZE = 5 * 1024 * 1024
MAX_FILES = 10
# (magic prefix, content type, extension)
_MAGIC = (
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
)
INLINE_TYPES = {"application/pdf", "image/png", "image/jpeg"}


def sniff(head):
    """(content type, extension) of a PDF / PNG / JPEG by its first bytes, else None."""
    for magic, ctype, ext in _MAGIC:
        if head.startswith(magic):
            return ctype, ext
    return None


def _read_capped(stream):
    data = stream.read(MAX_SIZE + 1)
    if len(data) > MAX_SIZE:
        raise ValidationFailed(_("文件不能超过5MB"))
    if not data:
        raise ValidationFailed(_("文件为空"))
    return data


def check_file(filename, stream):
    """Read and check an uploaded file.  Returns (bytes, content type, extension);
    raises ValidationFailed in Chinese."""
    data = _read_capped(stream)
    kind = sniff(data[:16])
    if kind is None:
        raise ValidationFailed(
            _("文件“%(name)s”不是有效的PDF、JPG或PNG文件", name=os.path.basename(filename or "") or "?")
        )
    return data, kind[0], kind[1]


def _display_name(filename, ext):
    name = os.path.basename((filename or "").replace("\\", "/")).strip() or "proof"
    stem = os.path.splitext(name)[0][:150] or "proof"
    # The stored name carries the extension of the real content type.
    return f"{stem}.{ext}"


def _root():
    return os.path.abspath(current_app.config["UPLOAD_DIR"])


def _store(data, sha, ext):
    rel = os.path.join("proofs", sha[:2], f"{sha}.{ext}")
    path = os.path.join(_root(), rel)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return rel


def add(record_id, file_storage, user, scope=None, commit=True):
    """Attach an uploaded proof file to the applicant's own editable declaration.
    Returns the Attachment; raises ValidationFailed / InvalidTransition / OutOfScope
    (before anything is written: the caller's pending changes stay).  Commits
    unless commit=False."""
    from app.models import HourRecord

    record = get_scoped(HourRecord, record_id, approval.applicant_scope(scope))
    if record is None:
        raise OutOfScope(_("记录不存在或不在您的权限范围内"))
    if record.status not in approval.EDITABLE:
        raise InvalidTransition(_("当前状态为“%(status)s”，不能修改证明材料", status=_(record.status.value)))
    count = db.session.scalar(select(func.count(Attachment.id)).where(Attachment.record_id == record.id))
    if count >= MAX_FILES:
        raise ValidationFailed(_("每条申报最多上传%(n)d个文件", n=MAX_FILES))
    data, ctype, ext = check_file(file_storage.filename, file_storage.stream)
    sha = hashlib.sha256(data).hexdigest()
    try:
        att = Attachment(
            record_id=record.id, filename=_display_name(file_storage.filename, ext), content_type=ctype,
            size=len(data), sha256=sha, storage_path=_store(data, sha, ext), uploaded_by_id=user.id,
        )
        db.session.add(att)
        db.session.flush()
        audit.record("attach", "HourRecord", record.id,
                     new={"attachment_id": att.id, "filename": att.filename, "sha256": sha, "size": len(data)},
                     unit_id=record.unit_id, region_code=record.region_code, user=user)
        if commit:
            db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return att


def remove(attachment_id, user, scope=None):
    """Remove a proof file from the applicant's own editable declaration (the
    stored file stays while another attachment shares its content).  Commits."""
    att = get_scoped(Attachment, attachment_id, approval.applicant_scope(scope))
    if att is None:
        raise OutOfScope(_("文件不存在或不在您的权限范围内"))
    record = att.record
    if record.status not in approval.EDITABLE:
        raise InvalidTransition(_("当前状态为“%(status)s”，不能修改证明材料", status=_(record.status.value)))
    rel, sha = att.storage_path, att.sha256
    try:
        audit.record("detach", "HourRecord", record.id,
                     old={"attachment_id": att.id, "filename": att.filename, "sha256": sha},
                     unit_id=record.unit_id, region_code=record.region_code, user=user)
        db.session.delete(att)
        db.session.flush()
        still_used = db.session.scalar(select(func.count(Attachment.id)).where(Attachment.sha256 == sha))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if not still_used:
        path = _safe_path(rel)
        if path and os.path.exists(path):
            os.remove(path)
        # and the review page's image of its first page (a copy of the personal data)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(_root(), "previews", sha[:2], sha + ".png"))
    return record.id


def _safe_path(rel):
    root = _root()
    path = os.path.abspath(os.path.join(root, rel))
    if not path.startswith(root + os.sep):
        return None
    return path


def open_scoped(attachment_id, scope=None):
    """(Attachment, absolute path) if the current scope covers the attachment's
    record, else OutOfScope.  The only way to a stored file."""
    att = get_scoped(Attachment, attachment_id, scope)
    if att is None:
        raise OutOfScope(_("文件不存在或不在您的权限范围内"))
    path = _safe_path(att.storage_path)
    if path is None or not os.path.exists(path):
        raise OutOfScope(_("文件已丢失，请联系管理员"))
    return att, path


def preview_path(att, path):
    """A PNG image of a proof for the review page: the image itself, or the first
    page of a PDF rendered by poppler's pdftoppm (cached by content hash).  None
    when no preview can be made.  A picture keeps the reviewer's browser from
    running a PDF viewer on an uploaded file."""
    if att.content_type.startswith("image/"):
        return path
    if att.content_type != "application/pdf" or shutil.which("pdftoppm") is None:
        return None
    out = os.path.join(_root(), "previews", att.sha256[:2], att.sha256)
    png = out + ".png"
    if not os.path.exists(png):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            subprocess.run(["pdftoppm", "-png", "-r", "72", "-f", "1", "-l", "1", "-singlefile", path, out],
                           check=True, timeout=20, capture_output=True)
        except (subprocess.SubprocessError, OSError):
            return None
    return png if os.path.exists(png) else None
