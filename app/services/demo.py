"""Demo data: a few cities, units of every kind, persons, a few hundred hour
records, and one account per role.  Deterministic (seeded)."""
import datetime
import random
from decimal import Decimal

from flask import current_app
from stdnum.cn import ric, uscc

from app.extensions import db
from app.models import (
    Category, HourRecord, LearningForm, Person, PersonUnitHistory, Source, Status, Unit, UnitKind,
)
from app.security import roles as R
from app.services.records import place_record

DEMO_PASSWORD = "Demo@2026"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红波辉鹏斌宇浩凯健俊帆帅旭宁琳晨欣悦"

COURSES_PRO = [
    "建筑结构抗震设计新规范解读", "人工智能在制造业中的应用", "临床护理质量管理", "智能电网运行与维护",
    "工程造价数字化管理", "大数据分析方法与实践", "新型材料检测技术", "环境监测新技术研修",
    "会计准则最新变化", "软件工程与敏捷开发", "水利工程安全评估", "医学影像诊断进展",
]
COURSES_PUB = [
    "专业技术人员职业道德与诚信建设", "数字经济与创新驱动发展", "知识产权保护与运用",
    "心理健康与压力管理", "法治思维与依法行政", "绿色低碳发展专题",
]
ORGANIZERS = ["江苏省人才继续教育指导服务中心", "东南大学继续教育学院", "南京大学", "苏州大学继续教育学院", "省工程师学会"]


def credit_code(seq, region):
    body = f"91{region}{seq:09d}"[:17]
    body = body[:8] + "".join("0123456789ABCDEFGHJKLMNPQRTUWXY"[int(c)] for c in body[8:])
    return body + uscc.calc_check_digit(body + "0")


def resident_id(region, birth, seq):
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


def _user(sm, username, first, last, role, **binding):
    user = sm.find_user(username=username)
    if user is None:
        user = sm.add_user(
            username=username, first_name=first, last_name=last,
            email=f"{username}@demo.invalid", role=sm.find_role(role), password=DEMO_PASSWORD,
        )
    for k, v in binding.items():
        setattr(user, k, v)
    db.session.commit()
    return user


def load_demo(seed=2023):
    """Create the demo world unless it exists (decided by the 'admin' account)."""
    sm = current_app.appbuilder.sm
    if sm.find_user(username="admin") is not None:
        return False
    rnd = random.Random(seed)

    def unit(seq, name, region, kind=UnitKind.EMPLOYER):
        u = Unit(name=name, credit_code=credit_code(seq, region), kind=kind, region_code=region,
                 contact_name="联系人", contact_phone="025-8000%04d" % seq, approved=True)
        db.session.add(u)
        return u

    unit_a = unit(1, "南京金陵科技有限公司", "320102")
    unit_b = unit(2, "苏州工业园区智造有限公司", "320508")
    agency = unit(3, "南京市人才服务中心", "320104", UnitKind.AGENCY)
    organizer = unit(4, "江苏省高级研修项目承办中心", "320106", UnitKind.ORGANIZER)
    others = [
        unit(5, "南京市第一医院", "320104"),
        unit(6, "无锡市建筑设计研究院", "320213"),
        unit(7, "徐州工程机械研究所", "320311"),
        unit(8, "苏州市立医院", "320508"),
        unit(9, "常州市水利规划设计院", "320402"),
        unit(10, "南通市会计师事务所", "320612"),
    ]
    db.session.flush()

    today = datetime.date.today()
    years = [today.year - 2, today.year - 1, today.year]
    persons = []

    def person(name, u, birth, seq, region="320102", freelancer=False):
        p = Person(name=name, id_number=resident_id(region, birth, seq), unit=u,
                   title=rnd.choice(["工程师", "高级工程师", "主治医师", "会计师", "讲师"]),
                   specialty=rnd.choice(["土木工程", "计算机", "临床医学", "会计", "电气工程"]),
                   is_freelancer=freelancer)
        db.session.add(p)
        db.session.add(PersonUnitHistory(person=p, unit=u, start_date=datetime.date(years[0], 1, 1)))
        persons.append(p)
        return p

    zhangsan = person("张三", unit_a, datetime.date(1988, 5, 12), 11)
    lisi = person("李四", unit_b, datetime.date(1990, 8, 3), 23, region="320508")
    wangwu = person("王五", agency, datetime.date(1985, 2, 27), 35, freelancer=True)
    all_units = [unit_a, unit_b] + others
    for i in range(60):
        u = all_units[i % len(all_units)]
        name = rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice([1, 2])))
        person(name, u, datetime.date(1970 + i % 30, 1 + i % 12, 1 + i % 28), 100 + i, region=u.region_code)
    db.session.flush()

    created = 0
    seen = set()
    for p in persons:
        for year in years:
            last_day = min(today, datetime.date(year, 12, 31))
            for k in range(rnd.randint(1, 3)):
                cat = Category.PRO if k != 2 else Category.PUB
                course = rnd.choice(COURSES_PRO if cat == Category.PRO else COURSES_PUB)
                start = datetime.date(year, rnd.randint(1, 12 if year < today.year else today.month), rnd.randint(1, 20))
                if start > last_day:
                    start = datetime.date(year, 1, 5)
                end = min(start + datetime.timedelta(days=rnd.randint(0, 5)), last_day)
                key = (p.name, p.id_number, year, cat, course, start)
                if key in seen:
                    continue
                seen.add(key)
                source = rnd.choice([Source.DECLARED, Source.DECLARED, Source.UNIT_IMPORT, Source.BUREAU_IMPORT])
                if year == today.year and source == Source.DECLARED:
                    status = rnd.choice([Status.SUBMITTED, Status.SUBMITTED, Status.APPROVED, Status.RETURNED, Status.DRAFT])
                else:
                    status = Status.APPROVED
                r = HourRecord(
                    person=p, year=year, category=cat,
                    learning_form=rnd.choice(list(LearningForm)) if cat == Category.PRO else LearningForm.TRAIN_ONLINE,
                    course_name=course, organizer_name=rnd.choice(ORGANIZERS), start_date=start, end_date=end,
                    hours=Decimal(rnd.choice([8, 12, 16, 24, 30, 32, 40])), source=source, status=status,
                )
                if status != Status.DRAFT:
                    r.submitted_at = datetime.datetime.combine(end, datetime.time(9))
                if status in (Status.APPROVED, Status.RETURNED):
                    r.reviewed_at = datetime.datetime.combine(end, datetime.time(15))
                    if status == Status.RETURNED:
                        r.review_comment = "证明材料不清晰，请重新上传"
                place_record(r, p)
                db.session.add(r)
                created += 1
    # An advanced-research programme reported by the organizer (no declaration needed).
    for p in persons[3:9]:
        r = HourRecord(person=p, year=years[1], category=Category.PRO, learning_form=LearningForm.RESEARCH,
                       course_name="新一代信息技术高级研修班", organizer_name=organizer.name,
                       start_date=datetime.date(years[1], 9, 10), end_date=datetime.date(years[1], 9, 14),
                       hours=Decimal(40), source=Source.ORGANIZER_REPORT, status=Status.APPROVED,
                       reported_by_unit_id=organizer.id)
        place_record(r, p)
        db.session.add(r)
        created += 1
    # 学时认定标准: the example table of issue 20 joins this year's catalogue,
    # labelled as an example to edit (services.standards.EXAMPLE).
    from app.services.standards import seed_example

    seed_example(today.year)
    db.session.commit()

    _user(sm, "admin", "系统", "管理员", R.ADMIN)
    # 三员分立 (issue 25): the production administrators, beside the demo's all-powerful admin.
    _user(sm, "sysadmin", "系统", "管理员", R.SYS_ADMIN)
    _user(sm, "secadmin", "安全", "管理员", R.SEC_ADMIN)
    _user(sm, "auditor", "安全", "审计员", R.AUDITOR)
    _user(sm, "bureau_js", "省厅", "经办", R.BUREAU, region_code="320000")
    _user(sm, "bureau_nj", "南京市人社局", "经办", R.BUREAU, region_code="320100")
    _user(sm, "bureau_sz", "苏州市人社局", "经办", R.BUREAU, region_code="320500")
    _user(sm, "unitadmin_a", "金陵科技", "管理员", R.UNIT_ADMIN, unit_id=unit_a.id)
    _user(sm, "clerk_a", "金陵科技", "经办", R.UNIT_OPERATOR, unit_id=unit_a.id)
    _user(sm, "clerk_b", "苏州智造", "经办", R.UNIT_OPERATOR, unit_id=unit_b.id)
    _user(sm, "agency_clerk", "人才服务中心", "经办", R.UNIT_OPERATOR, unit_id=agency.id)
    _user(sm, "organizer", "研修中心", "经办", R.ORGANIZER, unit_id=organizer.id)
    _user(sm, "zhangsan", "张", "三", R.APPLICANT, person_id=zhangsan.id)
    _user(sm, "lisi", "李", "四", R.APPLICANT, person_id=lisi.id)
    _user(sm, "wangwu", "王", "五", R.APPLICANT, person_id=wangwu.id)
    return created
