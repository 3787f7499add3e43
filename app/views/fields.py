"""Form fields for relations too large for a drop-down.

FAB renders a many-to-one relation of an add or edit form as a drop-down of
every related row: at province scale a million persons and 20 000 units, and
the account form took 40 s to open.  `RelatedLookupField` is typed instead:
the row's number (ID number, credit code), its exact name, or its id, looked up
within the user's row scope when the form is posted.
"""
from flask_appbuilder.fields import QuerySelectField
from flask_babel import lazy_gettext as _l
from markupsafe import escape
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import StopValidation
from wtforms.widgets import TextInput

from app.extensions import db
from app.security.scope import scope_clause
from app.fab.datamodel import LOOKUP_COLUMNS, lookup_clause


# What to type, per related model (the columns are datamodel.LOOKUP_COLUMNS).
LOOKUP_PLACEHOLDERS = {
    "Person": _l("身份证件号码或姓名"),
    "Unit": _l("统一社会信用代码或单位名称"),
    "CEUser": _l("用户名"),
}


class LookupInput(TextInput):
    """FAB's text input (BS3TextFieldWidget), with the field's own placeholder:
    FAB's puts the label there."""

    def __call__(self, field, **kwargs):
        kwargs["class"] = "form-control"
        if field.label:
            kwargs.setdefault("placeholder", field.label.text)
        return super().__call__(field, **kwargs)


class RelatedLookupField(StringField):
    """A many-to-one relation typed as the related row's number or name.  The
    form shows the current row's first lookup column (ID number, credit code);
    a text that names no row in scope, or several, is an error on the field."""

    widget = LookupInput()

    def __init__(self, label=None, model=None, placeholder=None, candidates=None, **kwargs):
        """`candidates`: a zero-argument callable giving the Select of the rows the
        text may name (default: the model's rows in the user's scope)."""
        render_kw = dict(kwargs.pop("render_kw", None) or {})
        placeholder = placeholder if placeholder is not None else LOOKUP_PLACEHOLDERS.get(model.__name__)
        if placeholder is not None:
            render_kw.setdefault("placeholder", placeholder)
        super().__init__(label, render_kw=render_kw, **kwargs)
        self.model = model
        self.candidates = candidates

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None:
            return ""
        column = LOOKUP_COLUMNS[self.model.__name__][0]
        return str(getattr(self.data, column) or "")

    def pre_validate(self, form):
        # A text that named no row (or several): that message alone, not also
        # "required" (DataRequired would replace it).
        if self.process_errors:
            raise StopValidation()

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").strip()
        self.data = None
        if not text:
            return
        base = self.candidates() if self.candidates else select(self.model).where(scope_clause(self.model))
        rows = db.session.execute(base.where(lookup_clause(self.model, text)).limit(2)).scalars().all()
        if len(rows) == 1:
            self.data = rows[0]
            return
        # FAB's form template shows a field's errors through Jinja's `_()`, which
        # marks the message safe: the typed text goes in escaped.
        shown = escape(text)
        if rows:
            raise ValueError(_l("“%(text)s”对应多条记录，请输入编号", text=shown))
        raise ValueError(_l("未找到“%(text)s”（或不在您的权限范围内）", text=shown))


def label_blank_choices(add_form, edit_form, search_form):
    """FAB's relation drop-downs leave their empty choice without a label, which
    WTForms 3.3 then renders as "__None": label it.  A required relation of an
    add form would preselect its first row (an hour record for whoever sorts
    first): it starts blank instead, and the user chooses."""
    for form in (add_form, edit_form, search_form):
        for name in dir(form):
            unbound = getattr(form, name, None)
            if isinstance(getattr(unbound, "field_class", None), type) and issubclass(
                unbound.field_class, QuerySelectField
            ):
                if form is add_form and not unbound.kwargs.get("allow_blank", True):
                    unbound.kwargs["allow_blank"] = True
                    unbound.kwargs.setdefault("blank_text", _l("请选择"))
                unbound.kwargs.setdefault("blank_text", _l("（无）"))
