"""A minimal streaming .xlsx (SpreadsheetML) writer: a bold header row, inline
strings, flat memory, and fast enough for a province's million-row export.  A
sheet holds at most 1 048 575 data rows (Excel's 1 048 576 rows less the header):
the rows past that continue on another sheet with the same header ("学时记录",
"学时记录(2)", ...), so no row is lost.

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
never run as a formula (`neutralise`; `restore` undoes it, for a reader of
these files such as the importer).

The sheets' number and names are known only at the end, so the parts that list
them (workbook, its relationships, [Content_Types].xml) are written after the
sheets, as openpyxl does; a zip's members are found by its central directory.
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
MAX_ROWS = 1_048_575  # data rows a sheet holds: Excel's 1 048 576 rows less the header

# cellXfs indexes in STYLES
BOLD, DATE, DATETIME, TEXT = 1, 2, 3, 4

_END = object()  # the end of an iterator, for next()
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_EXCEL_EPOCH = datetime.date(1899, 12, 30).toordinal()


# ---------------------------------------------------------------- cells


def neutralise(text):
    """`text` with an apostrophe in front when a spreadsheet could run it as a
    formula: it starts with = + - @ tab or CR, also behind apostrophes ("'=1"
    gets one more), so that `restore` gives back exactly what was written."""
    if text[:1] in FORMULA_STARTS or (text[:1] == "'" and text.lstrip("'")[:1] in FORMULA_STARTS):
        return "'" + text
    return text


def restore(text):
    """The inverse of `neutralise`: a cell's text as it was before writing."""
    if text[:1] == "'" and text.lstrip("'")[:1] in FORMULA_STARTS:
        return text[1:]
    return text


def text_cell(text, style=0):
    """An inline-string cell: characters XML forbids dropped, formulas
    neutralised (after the drop, which could uncover a leading =), cut to
    Excel's 32 767 characters, the rest escaped."""
    special = _SPECIAL.search(text)
    if special:
        text = _ILLEGAL.sub("", text)
    text = neutralise(text)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    if special:
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


def cell(value, style=0):
    """The XML of one cell holding `value`: str, int, float, Decimal, bool, date,
    datetime or None; anything else is written as its text.  `style` (a cellXfs
    index) formats every cell but a date, which has its date format."""
    s = f' s="{style}"' if style else ""
    if value is None:
        return f"<c{s}/>"
    if isinstance(value, str):
        return text_cell(value, style)
    if isinstance(value, bool):
        return f'<c{s} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        return f"<c{s}><v>{value}</v></c>"
    if isinstance(value, (float, decimal.Decimal)):
        f = float(value)
        if not math.isfinite(f):
            return text_cell(str(value), style)
        return f"<c{s}><v>{int(f) if f.is_integer() else repr(f)}</v></c>"
    if isinstance(value, datetime.date):  # datetime is a date too
        serial = excel_serial(value)
        if serial is None:  # Excel has no dates before 1900: keep it readable
            text = value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
            return text_cell(text, style)
        date_style = DATETIME if isinstance(value, datetime.datetime) else DATE
        return f'<c s="{date_style}"><v>{serial}</v></c>'
    return text_cell(str(value), style)


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
    enum member into its label, say) and runs once per distinct value; `style`
    formats its cells (TEXT for a text-formatted column)."""

    def __init__(self, convert=None, style=0):
        self.empty = cell(None, style)
        super().__init__({None: self.empty})
        self.convert = convert
        self.style = style
        self.width = 0
        self.measuring = True  # widths come from the first chunk, written before the rows

    def __missing__(self, key):
        value = key if self.convert is None else self.convert(key)
        xml = cell(value, self.style)
        if self.measuring and value is not None:
            self.width = max(self.width, display_width(value))
        if len(self) >= CACHE_LIMIT:
            self.clear()
            self[None] = self.empty
        self[key] = xml
        return xml


# ---------------------------------------------------------------- package

_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
<Default Extension="xml" ContentType="application/xml"/>\
<Override PartName="/xl/workbook.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
{sheets}\
<Override PartName="/xl/styles.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>\
</Types>"""

_SHEET_TYPE = """<Override PartName="/xl/worksheets/sheet{i}.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"""

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
<sheets>{sheets}</sheets></workbook>"""

_WORKBOOK_SHEET = '<sheet name={name} sheetId="{i}" r:id="rId{i}"/>'

# Sheets are rId1..rIdN; styles has an id of its own.
_WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
{sheets}\
<Relationship Id="rIdStyles" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>\
</Relationships>"""

_SHEET_REL = """<Relationship Id="rId{i}" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>"""

# cellXfs: 0 default, 1 bold (header), 2 date, 3 date and time, 4 text ("@")
_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>\
<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>\
<fonts count="2"><font><sz val="11"/><name val="等线"/><family val="2"/><charset val="134"/></font>\
<font><b/><sz val="11"/><name val="等线"/><family val="2"/><charset val="134"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>\
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


def nth_sheet_name(name, i):
    """The name of the i-th sheet (from 1) of rows titled `name` (a sheet_name):
    the name itself, then "name(2)", "name(3)", ... cut to fit 31 characters."""
    if i == 1:
        return name
    suffix = f"({i})"
    return name[:31 - len(suffix)].rstrip("'") + suffix


def _cols(widths, styles):
    """Column widths; a column's style also formats its empty cells, for what a user types there later."""
    if not widths:
        return ""
    cols = []
    for i, (w, s) in enumerate(zip(widths, styles), 1):
        style = f' style="{s}"' if s else ""
        cols.append(f'<col min="{i}" max="{i}" width="{min(max(w + 2, 8), MAX_WIDTH)}"{style} customWidth="1"/>')
    return "<cols>" + "".join(cols) + "</cols>"


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


def write_xlsx(path, headers, rows, *, title="Sheet1", converters=None, on_chunk=None, text_columns=(),
               max_rows=MAX_ROWS):
    """Write `headers` (bold, frozen) then `rows`, each a sequence of values in
    header order, to `path` (a file name or a binary file object), `max_rows`
    rows a sheet: the rows past it continue on sheets "title(2)", "title(3)", ...,
    each under the same header.

    `converters` (optional, one per column, None for none) turn a value read
    into the value written, once per distinct value.  The columns at the indexes
    `text_columns` are formatted as text ("@"), their empty cells too, so that an
    ID number typed there later keeps its digits.  `on_chunk(n)` is called after
    every chunk of rows with the number written so far.  Returns the number of
    data rows.  Raises ValueError for a converter count other than the headers'
    or `max_rows` outside 1..MAX_ROWS.
    """
    converters = converters or [None] * len(headers)
    if len(converters) != len(headers):
        raise ValueError("one converter per header")
    if not 1 <= max_rows <= MAX_ROWS:
        raise ValueError(f"max_rows must lie in 1..{MAX_ROWS}")
    styles = [TEXT if i in text_columns else 0 for i in range(len(headers))]
    columns = [Column(c, style) for c, style in zip(converters, styles)]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = sheet_name(title)
    rows = iter(rows)
    total = 0
    names = []
    start = None  # the sheet's first tags: known once the first chunk has measured the widths
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("_rels/.rels", _ROOT_RELS)
        zf.writestr("docProps/core.xml", _CORE.format(now=now))
        zf.writestr("xl/styles.xml", _STYLES)
        while True:
            names.append(nth_sheet_name(base, len(names) + 1))
            chunks = _chunks(islice(rows, max_rows), columns)
            first = next(chunks, None)  # rendered before the header: it measures the column widths
            if start is None:
                widths = []
                for h, col in zip(headers, columns):
                    col.measuring = False
                    widths.append(max(display_width(str(h)), col.width))
                header = "".join(text_cell(str(h), BOLD) for h in headers)
                start = f'{_SHEET_START}{_cols(widths, styles)}<sheetData><row r="1">{header}</row>'.encode()
            n = 0
            # force_zip64: a sheet's size is unknown until its end and may pass 2 GB.
            with zf.open(f"xl/worksheets/sheet{len(names)}.xml", "w", force_zip64=True) as fh:
                fh.write(start)
                for n, xml in chain([first] if first else [], chunks):
                    fh.write(xml.encode())
                    if on_chunk:
                        on_chunk(total + n)
                fh.write(b"</sheetData></worksheet>")
            total += n
            if n < max_rows:
                break
            more = next(rows, _END)  # a full sheet: another only for a row left
            if more is _END:
                break
            rows = chain([more], rows)
        numbered = list(enumerate(names, 1))
        zf.writestr("xl/workbook.xml", _WORKBOOK.format(
            sheets="".join(_WORKBOOK_SHEET.format(i=i, name=quoteattr(name)) for i, name in numbered)))
        zf.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.format(
            sheets="".join(_SHEET_REL.format(i=i) for i, _name in numbered)))
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES.format(
            sheets="".join(_SHEET_TYPE.format(i=i) for i, _name in numbered)))
    return total
