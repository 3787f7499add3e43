"""Role names and their permission sets, defined in code.

`FAB_ROLES` (built by `fab_roles()`) makes these FAB *builtin* roles: access checks
match them in memory, with no permission query per request.  `flask ce sync-roles`
creates the role rows (users link to them) and records the same permissions in
FAB's tables so that the security views show what each role may do.
"""
import re

from app.i18n import N_

ADMIN = "Admin"
BUREAU = "Bureau"
UNIT_ADMIN = "UnitAdmin"
UNIT_OPERATOR = "UnitOperator"
ORGANIZER = "Organizer"
INDUSTRY = "Industry"
APPLICANT = "Applicant"
# The national system's machine account (部省对接): reads the national API of its
# region and nothing else (no web page, no profile page); created by
# `flask ce national-account create --region 32`.
NATIONAL_SYNC = "NationalSync"

ROLE_LABELS = {
    ADMIN: N_("系统管理员"),
    BUREAU: N_("人社局经办"),
    UNIT_ADMIN: N_("单位管理员"),
    UNIT_OPERATOR: N_("单位经办"),
    ORGANIZER: N_("研修承办单位"),
    INDUSTRY: N_("行业主管部门"),
    APPLICANT: N_("个人"),
    NATIONAL_SYNC: N_("部省对接"),
}

# Roles a unit administrator may grant inside its own unit (issue 6).
UNIT_GRANTABLE = (UNIT_OPERATOR, UNIT_ADMIN)

READ = ("can_list", "can_show")
# Permissions every signed-in role needs (own profile, password, language).
COMMON = [
    ("UserInfoEditView", "can_this_form_get"),
    ("UserInfoEditView", "can_this_form_post"),
    ("ResetMyPasswordView", "can_this_form_get"),
    ("ResetMyPasswordView", "can_this_form_post"),
    ("CEUserDBModelView", "can_userinfo"),
    ("CEUserDBModelView", "resetmypassword"),
    ("LocaleView", "can_index"),
]


def _grid(view, *perms):
    return [(view, p) for p in perms]


def _menus(*names):
    return [(n, "menu_access") for n in names]


_UNIT_STAFF = (
    _grid("HourRecordView", *READ, "can_export")
    + _grid("PersonView", *READ, "can_export")
    + _grid("UnitView", *READ)
    + _grid("RegionView", *READ)
    + _menus("Registry", "HourRecords", "Persons", "Units")
)

ROLE_PERMISSIONS = {
    BUREAU: (
        _grid("HourRecordView", *READ, "can_export")
        + _grid("PersonView", *READ, "can_export")
        + _grid("UnitView", *READ, "can_export")
        + _grid("RegionView", *READ)
        + _grid("AuditLogView", *READ)
        + _menus("Registry", "HourRecords", "Persons", "Units", "Regions", "System", "AuditLog")
    ),
    UNIT_ADMIN: list(_UNIT_STAFF),
    UNIT_OPERATOR: list(_UNIT_STAFF),
    ORGANIZER: (
        _grid("HourRecordView", *READ, "can_export")
        + _grid("RegionView", *READ)
        + _menus("Registry", "HourRecords")
    ),
    INDUSTRY: (
        _grid("HourRecordView", *READ, "can_export")
        + _grid("RegionView", *READ)
        + _menus("Registry", "HourRecords")
    ),
    APPLICANT: _grid("HourRecordView", *READ) + _menus("Registry", "HourRecords"),
}


# Declaration → review workflow (issue 3): reviewers are unit staff (an agency's
# clerks for freelancers); bureau staff may open a record and revoke it.
_WORKFLOW_REVIEWER = (
    _grid("ReviewTodoView", "can_list", "can_show", "approve")  # an action's permission is its name
    + _grid("ReviewView", "can_show", "can_decide", "can_revoke")
    + _grid("UnitReviewView", "can_yearend", "can_departure")
    + _grid("ProofView", "can_download")
    + _grid("ApprovedHoursView", *READ)
    + _menus("Workflow", "ReviewTodo", "YearEndReview", "RevokeHours")
)
ROLE_PERMISSIONS[UNIT_OPERATOR] = list(ROLE_PERMISSIONS[UNIT_OPERATOR]) + _WORKFLOW_REVIEWER
ROLE_PERMISSIONS[UNIT_ADMIN] = (
    list(ROLE_PERMISSIONS[UNIT_ADMIN]) + _WORKFLOW_REVIEWER
    + _grid("AuditLogView", *READ) + _menus("System", "AuditLog")
)
ROLE_PERMISSIONS[BUREAU] = (
    list(ROLE_PERMISSIONS[BUREAU]) + _grid("ReviewView", "can_show", "can_revoke") + _grid("ProofView", "can_download")
    + _grid("ApprovedHoursView", *READ) + _menus("Workflow", "RevokeHours")
)
ROLE_PERMISSIONS[APPLICANT] = (
    list(ROLE_PERMISSIONS[APPLICANT]) + _grid("DeclarationView", "can_declare", "can_mine")
    + _grid("ProofView", "can_download") + _menus("Workflow", "DeclareHours", "MyHours")
)
# Accounts (issue 6): forced password change and the "unit awaiting approval"
# page for everyone; account administration, unit approval, attachment
# confirmation and the applicant's own unit page.
COMMON += [("AccountPasswordView", "can_change"), ("AccountStatusView", "can_pending")]
_ACCOUNTS = {
    BUREAU: _grid("AccountAdminView", "can_list", "can_add", "can_edit")
    + _grid("UnitApprovalView", *READ, "approve", "reject")
    + _menus("Accounts", "AccountAdmin", "UnitApprovals"),
    UNIT_ADMIN: _grid("AccountAdminView", "can_list", "can_add", "can_edit")
    + _grid("AttachmentConfirmView", "can_list", "can_confirm")
    + _menus("Accounts", "AccountAdmin", "AttachmentConfirm"),
    UNIT_OPERATOR: _grid("AttachmentConfirmView", "can_list", "can_confirm")
    + _menus("Accounts", "AttachmentConfirm"),
    APPLICANT: _grid("MyUnitView", "can_show", "can_request") + _menus("Accounts", "MyUnit"),
}
for _role, _pairs in _ACCOUNTS.items():
    ROLE_PERMISSIONS[_role] = list(ROLE_PERMISSIONS[_role]) + _pairs

# Dashboard and national interchange (issue 8): bureau and unit staff see the
# compliance dashboard of their scope; bureau staff export the national layout,
# pull the national REST API (JWT) and read its OpenAPI document.
_DASHBOARD = _grid("DashboardView", "can_index", "can_export") + _menus("Statistics", "Dashboard")
_NATIONAL = (
    _grid("NationalExportView", "can_index", "can_export")
    + _grid("NationalRecordApi", "can_get", "can_export")
    + _grid("OpenApi", "can_get")
    + _grid("SwaggerView", "can_show")
    + _menus("Statistics", "NationalExport")
)
for _role, _pairs in {BUREAU: _DASHBOARD + _NATIONAL, UNIT_ADMIN: _DASHBOARD, UNIT_OPERATOR: _DASHBOARD}.items():
    ROLE_PERMISSIONS[_role] = list(ROLE_PERMISSIONS[_role]) + _pairs


# The machine account: the API and its document, no web page (not even COMMON's).
ROLE_PERMISSIONS[NATIONAL_SYNC] = (
    _grid("NationalRecordApi", "can_get", "can_export") + _grid("OpenApi", "can_get")
)
MACHINE_ROLES = (NATIONAL_SYNC,)


def permissions_of(role):
    """The (view, permission) pairs of a role, the common ones included (but for
    machine accounts, which have no web pages)."""
    common = [] if role in MACHINE_ROLES else COMMON
    return list(dict.fromkeys(common + ROLE_PERMISSIONS.get(role, [])))


def fab_roles():
    """FAB_ROLES: anchored regexes, so 'PersonView' never matches 'PersonViewX'."""
    roles = {ADMIN: [[".*", ".*"]]}
    for role in ROLE_PERMISSIONS:
        roles[role] = [
            [re.escape(view) + r"\Z", re.escape(perm) + r"\Z"] for view, perm in permissions_of(role)
        ]
    return roles


ALL_ROLES = [ADMIN, BUREAU, UNIT_ADMIN, UNIT_OPERATOR, ORGANIZER, INDUSTRY, APPLICANT, NATIONAL_SYNC]

# Bulk import and long-job pages (issue 4): importing roles use the import pages;
# every role that exports a grid follows its large exports on the job pages.
_IMPORT = _grid("ImportView", "can_import", "can_job") + _menus("Imports")
for _role in (BUREAU, UNIT_ADMIN, UNIT_OPERATOR, ORGANIZER, INDUSTRY):
    ROLE_PERMISSIONS[_role] = list(ROLE_PERMISSIONS[_role]) + _IMPORT

# Certificates (issue 5): applicants print their own; unit and bureau staff print
# one or many persons of their scope; everyone sees the registry of their scope.
_CERT_OWN = (
    _grid("CertificatePrintView", "can_print") + _grid("CertificateView", *READ)
    + _menus("Certificates", "PrintCertificates", "CertificateRegistry")
)
for _role in (APPLICANT, UNIT_OPERATOR, UNIT_ADMIN, BUREAU):
    ROLE_PERMISSIONS[_role] = list(ROLE_PERMISSIONS[_role]) + _CERT_OWN
for _role in (UNIT_OPERATOR, UNIT_ADMIN, BUREAU):
    ROLE_PERMISSIONS[_role] = list(ROLE_PERMISSIONS[_role]) + _grid("CertificatePrintView", "can_print_batch")

# 学时认定标准 console (issue 20): Admin only (Admin holds every permission).  The
# rules are province-wide policy; a city bureau must not change them, and the
# Bureau role does not tell province staff from city staff, so it is not granted.
# To let another role (e.g. a SysAdmin role) maintain the rules, add this list
# to its ROLE_PERMISSIONS entry.
STANDARDS_PERMISSIONS = _grid("StandardsView", "can_index", "can_edit") + _menus("Standards")

# 三员分立 (issue 25, 等保 2.0 三级): three production administrators, each
# refused outside its duty.  Admin (everything) stays for the demo only.
SYS_ADMIN = "SysAdmin"
SEC_ADMIN = "SecAdmin"
AUDITOR = "Auditor"
ROLE_LABELS[ADMIN] = N_("超级管理员（仅演示）")
ROLE_LABELS[SYS_ADMIN] = N_("系统管理员")
ROLE_LABELS[SEC_ADMIN] = N_("安全管理员")
ROLE_LABELS[AUDITOR] = N_("安全审计员")
_CRUD = ("can_list", "can_show", "can_add", "can_edit", "can_delete", "can_export", "can_download")
ROLE_PERMISSIONS[SYS_ADMIN] = (  # regions, units (reference data); no users, roles, audit or hour records
    _grid("RegionView", *_CRUD) + _grid("UnitView", *_CRUD)
    + _menus("Registry", "Regions", "Units")
)
ROLE_PERMISSIONS[SEC_ADMIN] = (  # accounts, roles, permissions, second-factor resets, ending sessions
    _grid("CEUserDBModelView", "can_list", "can_show", "can_add", "can_edit", "can_delete", "resetpasswords")
    + _grid("ResetPasswordView", "can_this_form_get", "can_this_form_post")
    + _grid("RoleModelView", "can_list", "can_show", "can_add", "can_edit", "can_delete")
    + _grid("UserGroupModelView", "can_list", "can_show", "can_add", "can_edit", "can_delete")
    + _grid("PermissionModelView", "can_list") + _grid("ViewMenuModelView", "can_list")
    + _grid("PermissionViewModelView", "can_list")
    + _grid("SessionAdminView", "can_manage")
    + _menus("Security", "List Users", "List Roles", "List Groups", "Base Permissions", "Views/Menus",
             "Permission on Views/Menus", "AccountSecurity")
)
ROLE_PERMISSIONS[AUDITOR] = (  # reads, filters and exports the audit log; changes nothing
    _grid("AuditLogView", "can_list", "can_show", "can_export") + _menus("System", "AuditLog")
)
ALL_ROLES += [SYS_ADMIN, SEC_ADMIN, AUDITOR]
# Administrator roles whose row scope is the whole province for what they may open.
WHOLE_PROVINCE_ROLES = frozenset({ADMIN, SYS_ADMIN, SEC_ADMIN, AUDITOR})
# 学时认定标准 is the system administrator's duty (issue 20 + 三员分立).
ROLE_PERMISSIONS[SYS_ADMIN] = list(ROLE_PERMISSIONS[SYS_ADMIN]) + STANDARDS_PERMISSIONS
# The audit chain check (issue 26): the auditor runs it from the audit log page and
# acknowledges a failed run (nightly or not), which is shown on the auditors' pages.
ROLE_PERMISSIONS[AUDITOR] = list(ROLE_PERMISSIONS[AUDITOR]) + _grid("AuditLogView", "can_verify", "can_acknowledge")
