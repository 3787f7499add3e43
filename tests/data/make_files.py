"""Generate the .xlsx fixtures of tests/test_import.py (good and bad real-world input).

    .venv/bin/python tests/data/make_files.py

The files are committed; this script documents exactly how each was made.  Person
IDs are those of the demo data (app.services.demo): 张三 at 南京金陵科技 (unit A),
李四 at 苏州智造 (unit B), 王五 at the Nanjing agency.  All dates lie in 2026,
before the day the suite was written (2026-11-27), so they stay valid.
"""
import datetime
import os
import sys
import zipfile

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from openpyxl import Workbook  # noqa: E402
from openpyxl.styles import Font  # noqa: E402

from app.services.columns import KINDS, NATIONAL_HEADERS  # noqa: E402
from app.services.demo import resident_id  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

ZHANGSAN = resident_id("320102", datetime.date(1988, 5, 12), 11)
LISI = resident_id("320508", datetime.date(1990, 8, 3), 23)
WANGWU = resident_id("320102", datetime.date(1985, 2, 27), 35)
NEW_A = resident_id("320102", datetime.date(1992, 6, 18), 501)  # not registered anywhere
NEW_B = resident_id("320104", datetime.date(1979, 11, 2), 502)

FW = str.maketrans("0123456789", "０１２３４５６７８９")


def headers(kind):
    return KINDS[kind].headers


def book(kind, rows, *, header=None, text_id_col=True):
    wb = Workbook()
    ws = wb.active
    ws.title = "学时数据"
    ws.append(header or headers(kind))
    for r in rows:
        ws.append(r)
    if text_id_col:
        for row in ws.iter_rows(min_row=2, min_col=3, max_col=3):
            for c in row:
                if isinstance(c.value, str):
                    c.number_format = "@"
    return wb


def unit_row(name, number, course, start, end, hours, *, year=2026, cat="专业科目", form="培训（面授）",
             org="东南大学继续教育学院", id_type="居民身份证"):
    return [name, id_type, number, year, cat, form, course, org, start, end, hours]


def save(wb, name):
    wb.save(os.path.join(HERE, name))


def main():
    d = datetime.date
    # 1. three good rows, every cell as a real clerk would type it
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "建筑信息模型（BIM）应用", d(2026, 3, 5), d(2026, 3, 7), 16),
        unit_row("张三", ZHANGSAN, "工程项目管理实务", "2026-04-10", "2026-04-11", "8"),
        unit_row("张三", ZHANGSAN, "智能制造前沿技术", "2026/5/6", "2026/5/6", 4.5, form="培训(网络)"),
    ]), "good_unit.xlsx")

    # 2. full-width digits and spaces (typed with a Chinese IME)
    save(book("unit", [
        unit_row("　张三 ", ZHANGSAN.translate(FW), "全角数字课程", "２０２６-０６-０１", "２０２６年６月２日", "１２",
                 year="２０２６"),
    ]), "fullwidth_digits.xlsx")

    # 3. dates in every accepted form: date cell, serial number, four text forms
    serial = (d(2026, 7, 1) - d(1899, 12, 30)).days
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "日期格式一", d(2026, 7, 1), d(2026, 7, 1), 2),
        unit_row("张三", ZHANGSAN, "日期格式二", serial, serial + 1, 2),
        unit_row("张三", ZHANGSAN, "日期格式三", "2026-03-05", "2026-03-06", 2),
        unit_row("张三", ZHANGSAN, "日期格式四", "2026/3/5", "2026/3/6", 2),
        unit_row("张三", ZHANGSAN, "日期格式五", "2026年3月5日", "2026年3月6日", 2),
        unit_row("张三", ZHANGSAN, "日期格式六", "20260305", 20260306, 2),
    ]), "date_formats.xlsx")

    # 4. ID numbers stored as numbers (Excel shows 3.20102E+17 and lost the last digits)
    save(book("unit", [
        unit_row("张三", float(ZHANGSAN), "数字证件号一", "2026-03-05", "2026-03-05", 4),
        unit_row("张三", int(ZHANGSAN[:15]), "数字证件号二", "2026-03-06", "2026-03-06", 4),
        unit_row("张三", ZHANGSAN, "正常的一行", "2026-03-07", "2026-03-07", 4),
    ], text_id_col=False), "numeric_ids.xlsx")

    # 5. bad dates
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "不存在的日期", "2026-02-30", "2026-03-01", 4),
        unit_row("张三", ZHANGSAN, "看不懂的日期", "下周一", "2026-03-01", 4),
        unit_row("张三", ZHANGSAN, "结束早于开始", "2026-03-10", "2026-03-01", 4),
        unit_row("张三", ZHANGSAN, "不在认定年度", "2025-12-30", "2025-12-31", 4),
        unit_row("张三", ZHANGSAN, "空的开始日期", None, "2026-03-01", 4),
    ]), "bad_dates.xlsx")

    # 6. the same record twice in one file
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "重复课程", "2026-08-01", "2026-08-02", 8),
        unit_row("张三", ZHANGSAN, "另一门课程", "2026-08-03", "2026-08-03", 8),
        unit_row("张三", ZHANGSAN, "重复课程", "2026-08-01", "2026-08-02", 8),
    ]), "duplicates_in_file.xlsx")

    # 7. a person of another unit (李四, 苏州) in unit A's file
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "本单位人员课程", "2026-03-05", "2026-03-05", 4),
        unit_row("李四", LISI, "外单位人员课程", "2026-03-05", "2026-03-05", 4),
    ]), "other_unit_person.xlsx")

    # 8. formulas (never evaluated, never stored)
    wb = book("unit", [
        unit_row("张三", ZHANGSAN, '=HYPERLINK("http://evil.invalid","点我")', "2026-03-05", "2026-03-05", 4),
        unit_row("张三", ZHANGSAN, "学时是公式", "2026-03-06", "2026-03-06", "=2+2"),
        unit_row("张三", ZHANGSAN, "正常行", "2026-03-07", "2026-03-07", 4),
    ])
    save(wb, "formulas.xlsx")

    # 9. wrong headers (someone's own sheet)
    wb = Workbook()
    ws = wb.active
    ws.append(["名字", "身份证", "课程", "时长"])
    ws.append(["张三", ZHANGSAN, "某课程", 8])
    save(wb, "wrong_headers.xlsx")

    # 10. a corrupt zip: a good file cut in half
    with open(os.path.join(HERE, "good_unit.xlsx"), "rb") as fh:
        data = fh.read()
    with open(os.path.join(HERE, "corrupt_zip.xlsx"), "wb") as fh:
        fh.write(data[: len(data) // 2])

    # 11. not an xlsx at all (a CSV renamed)
    with open(os.path.join(HERE, "not_xlsx.xlsx"), "w", encoding="utf-8") as fh:
        fh.write("姓名,证件号码\n张三,%s\n" % ZHANGSAN)

    # 12. an old binary .xls renamed (OLE2 signature)
    with open(os.path.join(HERE, "old_xls.xlsx"), "wb") as fh:
        fh.write(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4088)

    # 13. a zip bomb: a sheet that inflates to 420 MB
    path = os.path.join(HERE, "zip_bomb.xlsx")
    with zipfile.ZipFile(os.path.join(HERE, "good_unit.xlsx")) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            if info.filename == "xl/worksheets/sheet1.xml":
                with dst.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
                    out.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
                    block = b" " * (1 << 20)
                    for _ in range(420):
                        out.write(block)
                    out.write(b"</sheetData></worksheet>")
            else:
                dst.writestr(info, src.read(info.filename))

    # 14. two good rows followed by 1 000 000 blank but formatted rows
    _blank_formatted(os.path.join(HERE, "blank_formatted_1m.xlsx"), 1_000_000)

    # 15. merged cells (one course over three rows) and blank trailing rows
    wb = book("unit", [
        unit_row("张三", ZHANGSAN, "合并单元格课程", "2026-09-01", "2026-09-01", 2),
        unit_row("张三", ZHANGSAN, None, "2026-09-02", "2026-09-02", 2),
        unit_row("张三", ZHANGSAN, None, "2026-09-03", "2026-09-03", 2),
    ])
    ws = wb.active
    ws.merge_cells("G2:G4")
    for r in range(5, 40):
        ws.cell(row=r, column=1).font = Font(bold=True)
        ws.cell(row=r, column=3, value="  ")
    save(wb, "merged_trailing.xlsx")

    # 16. bureau (南京) public hours: two Nanjing persons, one Suzhou person
    save(book("bureau", [
        unit_row("张三", ZHANGSAN, "数字经济与创新驱动发展（2026）", "2026-05-10", "2026-05-12", 12, cat="公需科目",
                 form="培训（网络）", org="南京市人社局"),
        unit_row("王五", WANGWU, "数字经济与创新驱动发展（2026）", "2026-05-10", "2026-05-12", 12, cat="公需科目",
                 form="培训（网络）", org="南京市人社局"),
        unit_row("李四", LISI, "数字经济与创新驱动发展（2026）", "2026-05-10", "2026-05-12", 12, cat="公需科目",
                 form="培训（网络）", org="南京市人社局"),
    ]), "bureau_public.xlsx")

    # 17. organizer report of an advanced programme that ended 2026-03-13
    save(book("organizer", [
        ["张三", "居民身份证", ZHANGSAN, 2026, "专业科目", "研修", "集成电路设计高级研修班", "2026-03-09", "2026-03-13", 40],
        ["李四", "居民身份证", LISI, 2026, "专业科目", "研修", "集成电路设计高级研修班", "2026-03-09", "2026-03-13", 40],
        ["王五", "居民身份证", WANGWU, 2026, "专业科目", "研修", "集成电路设计高级研修班", "2026-03-09", "2026-03-13", 40],
    ]), "organizer_programme.xlsx")

    # 18. unknown persons: unit A registers them, a bureau may not
    save(book("unit", [
        unit_row("赵新", NEW_A, "新入职培训", "2026-02-02", "2026-02-03", 12),
        unit_row("赵新", NEW_A, "安全生产培训", "2026-02-04", "2026-02-04", 4),
        unit_row("钱进", NEW_B, "新入职培训", "2026-02-02", "2026-02-03", 12),
    ]), "unknown_persons_unit.xlsx")
    save(book("bureau", [
        unit_row("赵新", NEW_A, "法治思维与依法行政", "2026-02-02", "2026-02-03", 6, cat="公需科目"),
    ]), "unknown_person_bureau.xlsx")

    # 19. category and learning form outside the template's lists; bad hours; bad IDs
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "类别不对", "2026-03-05", "2026-03-05", 4, cat="公需科目"),
        unit_row("张三", ZHANGSAN, "形式不对", "2026-03-05", "2026-03-05", 4, form="自学"),
        unit_row("张三", ZHANGSAN, "零学时", "2026-03-05", "2026-03-05", 0),
        unit_row("张三", ZHANGSAN, "零点三学时", "2026-03-05", "2026-03-05", "0.3"),
        unit_row("张三", ZHANGSAN, "学时过多", "2026-03-05", "2026-03-05", 999),
        unit_row("张三", ZHANGSAN, "学时是文字", "2026-03-05", "2026-03-05", "八"),
        unit_row("张三", ZHANGSAN[:17] + ("0" if ZHANGSAN[17] != "0" else "1"), "校验位错误", "2026-03-05", "2026-03-05", 4),
        unit_row("张三", ZHANGSAN[:10], "号码太短", "2026-03-05", "2026-03-05", 4),
        unit_row("李雷", ZHANGSAN, "姓名不符", "2026-03-05", "2026-03-05", 4),
    ]), "bad_values.xlsx")

    # 20. industry authority data in the national collection layout
    wb = Workbook()
    ws = wb.active
    ws.append(NATIONAL_HEADERS)
    ws.append(["居民身份证", ZHANGSAN, "张三", "南京金陵科技有限公司", "", "320102", 2026, "专业科目", "学术会议",
               "全国建筑行业学术年会", "中国建筑学会", "2026-10-12", "2026-10-14", 24, "行业导入", "2026-10-20"])
    ws.append(["居民身份证", LISI, "李四", "苏州工业园区智造有限公司", "", "320508", 2026, "公需科目", "培训（网络）",
               "行业从业人员职业道德", "行业协会", "2026-06-01", "2026-06-01", 6, "行业导入", "2026-06-05"])
    save(wb, "industry_national.xlsx")

    # 21. thirty good rows (row-limit test)
    save(book("unit", [
        unit_row("张三", ZHANGSAN, f"系列讲座第{i}讲", d(2026, 1, 5) + datetime.timedelta(days=i),
                 d(2026, 1, 5) + datetime.timedelta(days=i), 2) for i in range(30)
    ]), "rows_30.xlsx")

    # 22. a header row only
    save(book("unit", []), "header_only.xlsx")


def _blank_formatted(path, n):
    """Write the sheet XML by hand: openpyxl would take minutes for a million rows."""
    from openpyxl import load_workbook

    tmp = path + ".tmp.xlsx"
    save(book("unit", [
        unit_row("张三", ZHANGSAN, "大文件中的第一行", "2026-03-02", "2026-03-02", 3),
        unit_row("张三", ZHANGSAN, "大文件中的第二行", "2026-03-03", "2026-03-03", 3),
    ]), os.path.basename(tmp))
    with zipfile.ZipFile(tmp) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode()
        head, rest = sheet.split("<sheetData>")
        data, tail = rest.split("</sheetData>")
        head = head.replace('<dimension ref="A1:K3"/>', f'<dimension ref="A1:K{n + 3}"/>')
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename == "xl/worksheets/sheet1.xml":
                    with dst.open(info.filename, "w", force_zip64=True) as out:
                        out.write((head + "<sheetData>" + data).encode())
                        # Row and cell references are optional in SpreadsheetML: identical
                        # rows keep the committed file small (it inflates to ~45 MB).
                        row = b'<row s="1" customFormat="1" ht="15" customHeight="1"><c s="1"/></row>'
                        for _ in range(n // 10000):
                            out.write(row * 10000)
                        out.write(("</sheetData>" + tail).encode())
                else:
                    dst.writestr(info, src.read(info.filename))
    os.remove(tmp)
    load_workbook  # keep flake quiet


if __name__ == "__main__":
    main()
    print("\n".join(sorted(f for f in os.listdir(HERE) if f.endswith(".xlsx"))))
