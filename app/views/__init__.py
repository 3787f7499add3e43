"""Every view is registered here, in one place."""
from flask_babel import lazy_gettext as _l


def register(appbuilder):
    from app.views.audit import AuditLogView
    from app.views.hours import HourRecordView
    from app.views.org import RegionView, UnitView
    from app.views.person import PersonView

    reg = _l("学时管理")
    appbuilder.add_view(
        HourRecordView, "HourRecords", label=_l("学时记录"), icon="fa-clock-o",
        category="Registry", category_label=reg, category_icon="fa-book",
    )
    appbuilder.add_view(PersonView, "Persons", label=_l("专业技术人员"), icon="fa-user", category="Registry")
    appbuilder.add_view(UnitView, "Units", label=_l("单位"), icon="fa-building", category="Registry")
    appbuilder.add_view(RegionView, "Regions", label=_l("行政区划"), icon="fa-map", category="Registry")
    appbuilder.add_view(
        AuditLogView, "AuditLog", label=_l("操作日志"), icon="fa-history",
        category="System", category_label=_l("系统"), category_icon="fa-cogs",
    )
    from app.views.standards import StandardsView

    appbuilder.add_view(
        StandardsView, "Standards", label=_l("学时认定标准"), icon="fa-balance-scale",
        category="System", category_label=_l("系统"), category_icon="fa-cogs",
    )
    from app.views.workflow import DeclarationView, ProofView, ReviewTodoView, ReviewView, UnitReviewView

    wf = _l("申报审核")
    appbuilder.add_view(
        DeclarationView, "DeclareHours", href="/declare/new", label=_l("学时申报"), icon="fa-pencil",
        category="Workflow", category_label=wf, category_icon="fa-check-square-o",
    )
    appbuilder.add_link("MyHours", href="/declare/mine", label=_l("我的学时"), icon="fa-list", category="Workflow")
    appbuilder.add_view(ReviewTodoView, "ReviewTodo", label=_l("待核准申报"), icon="fa-inbox", category="Workflow")
    appbuilder.add_view(
        UnitReviewView, "YearEndReview", href="/unitreview/yearend", label=_l("年度审核"), icon="fa-calendar-check-o",
        category="Workflow",
    )
    from app.views.workflow import ApprovedHoursView

    appbuilder.add_view(
        ApprovedHoursView, "RevokeHours", label=_l("撤销认定"), icon="fa-ban", category="Workflow",
        category_label=wf, category_icon="fa-check-square-o",
    )
    appbuilder.add_view_no_menu(ReviewView)
    appbuilder.add_view_no_menu(ProofView)
    from app.views.dashboard import DashboardView, NationalExportView

    appbuilder.add_view(
        DashboardView, "Dashboard", label=_l("达标统计"), icon="fa-bar-chart",
        category="Statistics", category_label=_l("统计与对接"), category_icon="fa-line-chart",
    )
    appbuilder.add_view(
        NationalExportView, "NationalExport", label=_l("部省对接"), icon="fa-exchange", category="Statistics",
    )
    from app.views.imports import ImportView

    appbuilder.add_view(ImportView, "Imports", label=_l("批量导入"), icon="fa-upload", category="Registry")
    from app.views.certificates import CertificatePrintView, CertificateVerifyView, CertificateView

    appbuilder.add_view(
        CertificatePrintView, "PrintCertificates", label=_l("打印学时证书"), icon="fa-print",
        category="Certificates", category_label=_l("学时证书"), category_icon="fa-certificate",
    )
    appbuilder.add_view(
        CertificateView, "CertificateRegistry", label=_l("证书登记簿"), icon="fa-list-alt", category="Certificates",
    )
    # Public (no login): the verification page a certificate's QR code points to.
    appbuilder.add_view_no_menu(CertificateVerifyView)
    from app.views.accounts import register as register_accounts
    from app.views.display import LargeTextView

    appbuilder.add_view_no_menu(LargeTextView)

    register_accounts(appbuilder)
    from app.views.sessions import register as register_sessions

    register_sessions(appbuilder)
    from app.views.portal import register as register_portal

    register_portal(appbuilder)
