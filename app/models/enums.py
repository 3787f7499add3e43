"""Reference lists.  Members are stored by name; the value is the Chinese label
(the source language of the catalog), shown through gettext in the UI."""
import enum

from app.i18n import N_


class Category(enum.Enum):
    PRO = N_("专业科目")
    PUB = N_("公需科目")


class LearningForm(enum.Enum):
    TRAIN_ONSITE = N_("培训（面授）")
    TRAIN_ONLINE = N_("培训（网络）")
    CONFERENCE = N_("学术会议")
    DEGREE = N_("学历（学位）教育")
    STUDY = N_("进修")
    RESEARCH = N_("研修")
    OTHER = N_("其他")


class Source(enum.Enum):
    DECLARED = N_("个人申报")
    UNIT_IMPORT = N_("单位导入")
    ORGANIZER_REPORT = N_("研修上报")
    BUREAU_IMPORT = N_("人社局导入")
    INDUSTRY_IMPORT = N_("行业导入")


class Status(enum.Enum):
    DRAFT = N_("草稿")
    SUBMITTED = N_("待核准")
    APPROVED = N_("已核准")
    RETURNED = N_("已退回")
    WITHDRAWN = N_("已撤回")
    REVOKED = N_("已撤销")


class UnitKind(enum.Enum):
    EMPLOYER = N_("用人单位")
    AGENCY = N_("人力资源服务机构")
    ORGANIZER = N_("研修承办单位")
    INDUSTRY = N_("行业主管部门")
    BUREAU = N_("人社局")


class IdType(enum.Enum):
    RESIDENT = N_("居民身份证")
    PASSPORT = N_("护照")
    HK_MACAO = N_("港澳居民来往内地通行证")
    TAIWAN = N_("台湾居民来往大陆通行证")
    FOREIGN_PR = N_("外国人永久居留身份证")
    OTHER = N_("其他")


class ReviewKind(enum.Enum):
    YEAR_END = N_("年度审核")
    DEPARTURE = N_("离职审核")


def label(member):
    """The translated label of an enum member (or '' for None)."""
    if member is None:
        return ""
    from flask_babel import gettext

    return gettext(member.value)
