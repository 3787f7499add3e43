"""Downloadable .xlsx templates, one per import kind, built from app.services.columns."""
import datetime
import io
from dataclasses import replace

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from app.services.columns import get_kind

DATA_SHEET = "学时数据"
HELP_SHEET = "填写说明"
LIST_SHEET = "参考列表"
# Validation and text format cover this many data rows.
TEMPLATE_ROWS = 5000


def _example_row(kind, today=None):
    today = today or datetime.date.today()
    year = today.year
    start = datetime.date(year, 1, 8)
    end = datetime.date(year, 1, 10)
    values = {
        "year": year,
        "start_date": start,
        "end_date": end,
    }
    return [values.get(c.key, c.example) for c in kind.columns]


def _rule_form_columns(kind, year):
    """The kind's columns with 学习形式's drop-down listing `year`'s active forms of
    the 学时认定标准 that count for the kind's categories (and their rules, for the
    instructions sheet)."""
    from app.services import standards

    forms = [r for r in standards.catalogue(year) if {c.name for c in kind.categories} & set(r.categories)]
    names = tuple(dict.fromkeys(r.name for r in forms))
    cols = []
    for col in kind.columns:
        if col.key == "learning_form" and names:
            example = col.example if col.example in names else names[0]
            col = replace(col, choices=names, example=example)
        cols.append(col)
    return tuple(cols), forms


def _needs(rule):
    """Which columns a form's rule reads (for the instructions sheet)."""
    return {"DECLARED": "填写“学时”", "PER_DAY": "填写“天数”", "MULTIPLE": "填写“授课（讲座）学时”",
            "FIXED": "可填写“加项”", "TABLE": "填写“级别”和“名次”"}.get(rule.kind, "")


def build_template(code, today=None):
    """The template of import kind `code` as .xlsx bytes.  A kind whose forms
    follow the 学时认定标准 lists the year's active forms (needs an app context)."""
    kind = get_kind(code)
    year = (today or datetime.date.today()).year
    forms = []
    if kind.rule_forms:
        columns, forms = _rule_form_columns(kind, year)
        kind = replace(kind, columns=columns)
    wb = Workbook()
    ws = wb.active
    ws.title = DATA_SHEET
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="1F5F99")
    required_fill = PatternFill("solid", fgColor="B03A2E")
    ws.append(kind.headers)
    for idx, col in enumerate(kind.columns, start=1):
        cell = ws.cell(row=1, column=idx)
        cell.font = header_font
        cell.fill = required_fill if col.required else header_fill
        cell.alignment = Alignment(horizontal="center")
        ws.column_dimensions[get_column_letter(idx)].width = col.width + 4
    ws.append(_example_row(kind, today))
    ws.freeze_panes = "A2"

    # Reference lists on their own sheet, so drop-downs are not limited to 255 characters.
    lists = wb.create_sheet(LIST_SHEET)
    list_col = 0
    for idx, col in enumerate(kind.columns, start=1):
        letter = get_column_letter(idx)
        if col.text:
            for r in range(2, TEMPLATE_ROWS + 2):
                ws.cell(row=r, column=idx).number_format = "@"
        if col.date:
            for r in range(2, 3):
                ws.cell(row=r, column=idx).number_format = "yyyy-mm-dd"
        if col.choices:
            list_col += 1
            lletter = get_column_letter(list_col)
            lists.cell(row=1, column=list_col, value=col.header)
            for i, choice in enumerate(col.choices, start=2):
                lists.cell(row=i, column=list_col, value=choice)
            ref = f"'{LIST_SHEET}'!${lletter}$2:${lletter}${len(col.choices) + 1}"
            dv = DataValidation(
                type="list", formula1=ref, allow_blank=not col.required, showErrorMessage=True,
                errorTitle="输入有误", error=f"请从下拉列表中选择{col.header}",
                promptTitle=col.header, prompt="请从下拉列表中选择",
            )
            dv.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
            ws.add_data_validation(dv)
    lists.sheet_state = "hidden"

    help_ws = wb.create_sheet(HELP_SHEET)
    help_ws.column_dimensions["A"].width = 22
    help_ws.column_dimensions["B"].width = 90
    help_ws.append([kind.title])
    help_ws["A1"].font = Font(bold=True, size=14)
    help_ws.append([])
    help_ws.append(["填写要求"])
    help_ws["A3"].font = Font(bold=True)
    for n, line in enumerate(kind.instructions, start=1):
        help_ws.append([f"{n}.", line])
    help_ws.append([])
    help_ws.append(["列", "说明"])
    help_ws.cell(row=help_ws.max_row, column=1).font = Font(bold=True)
    for col in kind.columns:
        parts = ["必填" if col.required else "选填"]
        if col.choices:
            parts.append("可选值：" + "、".join(col.choices))
        if col.note:
            parts.append(col.note)
        help_ws.append([col.header, "；".join(parts)])
    if forms:
        from app.services import rules

        help_ws.append([])
        help_ws.append([f"{year}年度学时认定标准（学习形式及学时计算）"])
        help_ws.cell(row=help_ws.max_row, column=1).font = Font(bold=True)
        for r in forms:
            help_ws.append([r.name, "；".join(filter(None, [rules.describe(r), _needs(r), r.proof_text and
                                                            "证明材料：" + r.proof_text]))])
    for row in help_ws.iter_rows(min_row=4):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def template_filename(code):
    return get_kind(code).title + ".xlsx"
