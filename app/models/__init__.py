"""All models, imported once so that Alembic and the mappers see every table."""
from app.models.audit import AuditArchive, AuditChain, AuditCheck, AuditLog  # noqa: F401
from app.models.enums import Category, IdType, LearningForm, ReviewKind, Source, Status, UnitKind  # noqa: F401
from app.models.hours import Attachment, HourRecord, HourTally, ImportBatch, PersonReview  # noqa: F401
from app.models.org import Region, Unit  # noqa: F401
from app.models.person import Person, PersonUnitHistory  # noqa: F401
from app.models.user import CEUser  # noqa: F401
from app.models.job import Job  # noqa: F401
from app.models.certificate import Certificate, CertificateStatus  # noqa: F401
from app.models.security import AccountSecurity, UserSession  # noqa: F401
from app.models.totals import PersonYearTotal, RegionYearSource, UnitPersons, UnitYearSource, UnitYearTotal, YearRequirement, YearRequirementLevel  # noqa: F401
from app.models.portal import PortalTicket  # noqa: F401
from app.models.rules import LearningFormRule  # noqa: F401,E402
