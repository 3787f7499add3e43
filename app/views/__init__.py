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
    from app.api.national import register as register_national_api
    from app.views.dashboard import DashboardView, NationalExportView

    appbuilder.add_view(
        DashboardView, "Dashboard", label=_l("达标统计"), icon="fa-bar-chart",
        category="Statistics", category_label=_l("统计与对接"), category_icon="fa-line-chart",
    )
    appbuilder.add_view(
        NationalExportView, "NationalExport", label=_l("部省对接"), icon="fa-exchange", category="Statistics",
    )
    register_national_api(appbuilder)
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
