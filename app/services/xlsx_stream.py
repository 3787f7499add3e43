"""A minimal streaming .xlsx (SpreadsheetML) writer: one sheet, a bold header row,
inline strings, flat memory, and fast enough for a province's million-row export.

Why not openpyxl / xlsxwriter: both build a cell object per value and top out
at ~10-16k rows/s; the issue asks for 50k.  Here each column owns a bounded
dict from value to finished cell XML, so the many repeating values of an
export (enum labels, years, dates, unit names) are rendered once, and a row is
a C-level `str.join` of dict lookups.  Cells carry no `r` reference (it is
optional; Excel, openpyxl and calamine place cells by position), so a `None`
is written as an empty `<c/>` to keep the later cells in their columns.

Strings are written inline (no shared-strings table to hold in memory) and are
made safe for a spreadsheet: XML-escaped, characters XML 1.0 forbids removed,
and a leading = + - @ tab or CR neutralised with an apostrophe so the text is
never run as a formula.
"""
import datetime
import decimal
import math
import re
import zipfile
from itertools import chain, islice
from operator import getitem
from xml.sax.saxutils import quoteattr

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000  # rows joined into one write: big enough for zlib, small for memory
CACHE_LIMIT = 4096  # distinct values remembered per column before the cache starts over
MAX_WIDTH = 60
MAX_TEXT = 32767  # Excel's limit for one cell

# cellXfs indexes in STYLES
BOLD, DATE, DATETIME = 1, 2, 3

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_EXCEL_EPOCH = datetime.date(1899, 12, 30).toordinal()
_EMPTY = "<c/>"


# ---------------------------------------------------------------- cells


def text_cell(text, style=0):
    """An inline-string cell: formulas neutralised, cut to Excel's 32 767
    characters, characters XML forbids dropped, the rest escaped."""
    if text[:1] in FORMULA_STARTS:
        text = "'" + text
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    if _SPECIAL.search(text):
        text = _ILLEGAL.sub("", text)
        # &#13;: a raw CR would be read back as a line feed
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    s = f' s="{style}"' if style else ""
    return f'<c{s} t="inlineStr"><is><t{space}>{text}</t></is></c>'


def excel_serial(value):
    """Days since 1899-12-30 (Excel's 1900 date system, including its phantom
    1900-02-29), with the time of day as the fraction; None before 1900."""
    days = value.toordinal() - _EXCEL_EPOCH
    if days < 61:  # before 1900-03-01 Excel counts the non-existent 1900-02-29
        days -= 1
    if days < 1:
        return None
    if isinstance(value, datetime.datetime):
        seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
        return days + seconds / 86400
    return days


def cell(value):
    """The XML of one cell holding `value`: str, int, float, Decimal, bool, date,
    datetime or None; anything else is written as its text."""
    if value is None:
        return _EMPTY
    if isinstance(value, str):
        return text_cell(value)
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        return f"<c><v>{value}</v></c>"
    if isinstance(value, (float, decimal.Decimal)):
        f = float(value)
        if not math.isfinite(f):
            return text_cell(str(value))
        return f"<c><v>{int(f) if f.is_integer() else repr(f)}</v></c>"
    if isinstance(value, datetime.date):  # datetime is a date too
        serial = excel_serial(value)
        if serial is None:  # Excel has no dates before 1900: keep it readable
            return text_cell(value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat())
        style = DATETIME if isinstance(value, datetime.datetime) else DATE
        return f'<c s="{style}"><v>{serial}</v></c>'
    return text_cell(str(value))


def display_width(value):
    """Roughly how many character widths Excel needs (a CJK character takes two)."""
    if isinstance(value, datetime.datetime):
        return 19
    if isinstance(value, datetime.date):
        return 10
    text = value if isinstance(value, str) else str(value)
    return (len(text) + len(text.encode("utf-8"))) // 2


class Column(dict):
    """Finished cell XML by value for one column (its values share one type, so
    True and 1 never meet).  `convert` turns a value into what is written (an
    enum member into its label, say) and runs once per distinct value."""

    def __init__(self, convert=None):
        super().__init__({None: _EMPTY})
        self.convert = convert
        self.width = 0
        self.measuring = True  # widths come from the first chunk, written before the rows

    def __missing__(self, key):
        value = key if self.convert is None else self.convert(key)
        xml = cell(value)
        if self.measuring and value is not None:
            self.width = max(self.width, display_width(value))
        if len(self) >= CACHE_LIMIT:
            self.clear()
            self[None] = _EMPTY
        self[key] = xml
        return xml


# ---------------------------------------------------------------- package

_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
<Default Extension="xml" ContentType="application/xml"/>\
<Override PartName="/xl/workbook.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
<Override PartName="/xl/worksheets/sheet1.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>\
<Override PartName="/xl/styles.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>\
</Types>"""

_ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
<Relationship Id="rId1" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>\
<Relationship Id="rId2" \
Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" \
Target="docProps/core.xml"/>\
</Relationships>"""

_CORE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" \
xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\
<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>\
<dcterms:modified xsi:type="dcterms:W3CDTF">{now}</dcterms:modified>\
</cp:coreProperties>"""

_WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" \
xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">\
<bookViews><workbookView/></bookViews>\
<sheets><sheet name={name} sheetId="1" r:id="rId1"/></sheets></workbook>"""

_WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
<Relationship Id="rId1" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>\
<Relationship Id="rId2" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>\
</Relationships>"""

# cellXfs: 0 default, 1 bold (header), 2 date, 3 date and time
_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>\
<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>\
<fonts count="2"><font><sz val="11"/><name val="等线"/><family val="2"/><charset val="134"/></font>\
<font><b/><sz val="11"/><name val="等线"/><family val="2"/><charset val="134"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>\
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
</styleSheet>"""

_SHEET_START = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
<sheetViews><sheetView workbookViewId="0">\
<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>\
<selection pane="bottomLeft"/></sheetView></sheetViews>\
<sheetFormatPr defaultRowHeight="15"/>"""


def sheet_name(title):
    """A name Excel accepts: no : \\ / ? * [ ], no apostrophe at either end, 1-31 characters."""
    name = re.sub(r"[:\\/?*\[\]]", "_", _ILLEGAL.sub("", str(title))).strip("'")[:31].strip("'")
    return name or "Sheet1"


def _cols(widths):
    if not widths:
        return ""
    return "<cols>" + "".join(
        f'<col min="{i}" max="{i}" width="{min(max(w + 2, 8), MAX_WIDTH)}" customWidth="1"/>'
        for i, w in enumerate(widths, 1)) + "</cols>"


def _chunks(rows, columns):
    """The data rows' XML, CHUNK_ROWS rows at a time, each with the row count so far."""
    rows = iter(rows)
    n = 0
    while True:
        chunk = []
        for row in islice(rows, CHUNK_ROWS):
            n += 1
            chunk.append(f'<row r="{n + 1}">{"".join(map(getitem, columns, row))}</row>')
        if not chunk:
            return
        yield n, "".join(chunk)


def write_xlsx(path, headers, rows, *, title="Sheet1", converters=None, on_chunk=None):
    """Write one sheet: `headers` (bold, frozen) then `rows`, each a sequence of
    values in header order, to `path` (a file name or a binary file object).

    `converters` (optional, one per column, None for none) turn a value read
    into the value written, once per distinct value.  `on_chunk(n)` is called
    after every chunk of rows with the number written so far.  Returns the
    number of data rows.
    """
    columns = [Column(c) for c in (converters or [None] * len(headers))]
    if len(columns) != len(headers):
        raise ValueError("one converter per header")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    n = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _ROOT_RELS)
        zf.writestr("docProps/core.xml", _CORE.format(now=now))
        zf.writestr("xl/workbook.xml", _WORKBOOK.format(name=quoteattr(sheet_name(title))))
        zf.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        zf.writestr("xl/styles.xml", _STYLES)
        # force_zip64: the sheet's size is unknown until the end and may pass 2 GB.
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            chunks = _chunks(rows, columns)
            first = next(chunks, None)  # rendered first: it measures the column widths
            widths = []
            for h, col in zip(headers, columns):
                col.measuring = False
                widths.append(max(display_width(str(h)), col.width))
            header = "".join(text_cell(str(h), BOLD) for h in headers)
            fh.write(f'{_SHEET_START}{_cols(widths)}<sheetData><row r="1">{header}</row>'.encode())
            for n, xml in chain([first] if first else [], chunks):
                fh.write(xml.encode())
                if on_chunk:
                    on_chunk(n)
            fh.write(b"</sheetData></worksheet>")
    return n
