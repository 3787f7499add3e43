"""person pending unit (self-registration awaiting the unit's confirmation)

Revision ID: f27b3f1d54a9
Revises: 0cacb56d8447
Create Date: 2026-11-27 01:45:26.670300

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f27b3f1d54a9'
down_revision = '0cacb56d8447'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_unit_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_person_pending_unit', ['pending_unit_id'], unique=False)
        batch_op.create_foreign_key('fk_person_pending_unit', 'unit', ['pending_unit_id'], ['id'])


def downgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_constraint('fk_person_pending_unit', type_='foreignkey')
        batch_op.drop_index('ix_person_pending_unit')
        batch_op.drop_column('pending_unit_id')
