"""Reference lists.  Members are stored by name; the value is the Chinese label
(the source language of the catalog), shown through gettext in the UI."""
import enum


class Category(enum.Enum):
    PRO = "专业科目"
    PUB = "公需科目"


class LearningForm(enum.Enum):
    TRAIN_ONSITE = "培训（面授）"
    TRAIN_ONLINE = "培训（网络）"
    CONFERENCE = "学术会议"
    DEGREE = "学历（学位）教育"
    STUDY = "进修"
    RESEARCH = "研修"
    OTHER = "其他"


class Source(enum.Enum):
    DECLARED = "个人申报"
    UNIT_IMPORT = "单位导入"
    ORGANIZER_REPORT = "研修上报"
    BUREAU_IMPORT = "人社局导入"
    INDUSTRY_IMPORT = "行业导入"


class Status(enum.Enum):
    DRAFT = "草稿"
    SUBMITTED = "待核准"
    APPROVED = "已核准"
    RETURNED = "已退回"
    WITHDRAWN = "已撤回"
    REVOKED = "已撤销"


class UnitKind(enum.Enum):
    EMPLOYER = "用人单位"
    AGENCY = "人力资源服务机构"
    ORGANIZER = "研修承办单位"
    INDUSTRY = "行业主管部门"
    BUREAU = "人社局"


class IdType(enum.Enum):
    RESIDENT = "居民身份证"
    PASSPORT = "护照"
    HK_MACAO = "港澳居民来往内地通行证"
    TAIWAN = "台湾居民来往大陆通行证"
    FOREIGN_PR = "外国人永久居留身份证"
    OTHER = "其他"


class ReviewKind(enum.Enum):
    YEAR_END = "年度审核"
    DEPARTURE = "离职审核"


def label(member):
    """The translated label of an enum member (or '' for None)."""
    if member is None:
        return ""
    from flask_babel import gettext

    return gettext(member.value)
