"""Octavia's database on SQLite: the schema from the models' metadata and the seeded lookup
tables, since alembic's migrations do not run on SQLite."""

from __future__ import annotations

from typing import Any


def init_database(url: str) -> None:
    """Create the schema and seed lookup tables, once (alembic does not run on SQLite)."""
    from octavia.common import constants
    from octavia.db import base_models, models
    from oslo_db.sqlalchemy import enginefacade
    from sqlalchemy import func, select

    facade = enginefacade.transaction_context()
    facade.configure(connection=url, sqlite_fk=True)
    engine = facade.writer.get_engine()
    session = facade.writer.get_sessionmaker()()
    try:
        base_models.BASE.metadata.create_all(engine)
        with session.begin():
            seeded = session.scalar(select(func.count()).select_from(models.ProvisioningStatus))
            if seeded:
                return
            lookups: list[tuple[Any, Any]] = [
                (models.ProvisioningStatus, constants.SUPPORTED_PROVISIONING_STATUSES),
                (models.OperatingStatus, constants.SUPPORTED_OPERATING_STATUSES),
                (models.HealthMonitorType, constants.SUPPORTED_HEALTH_MONITOR_TYPES),
                (models.Algorithm, constants.SUPPORTED_LB_ALGORITHMS),
                (models.Protocol, constants.SUPPORTED_PROTOCOLS),
                (models.SessionPersistenceType, constants.SUPPORTED_SP_TYPES),
                (models.AmphoraRoles, constants.SUPPORTED_AMPHORA_ROLES),
                (models.LBTopology, constants.SUPPORTED_LB_TOPOLOGIES),
                (models.VRRPAuthMethod, constants.SUPPORTED_VRRP_AUTH),
                (models.L7RuleType, constants.SUPPORTED_L7RULE_TYPES),
                (models.L7RuleCompareType, constants.SUPPORTED_L7RULE_COMPARE_TYPES),
                (models.L7PolicyAction, constants.SUPPORTED_L7POLICY_ACTIONS),
                (models.ClientAuthenticationMode, constants.SUPPORTED_CLIENT_AUTH_MODES),
            ]
            for model, names in lookups:
                session.add_all(model(name=name) for name in sorted(set(names)))
            # Deleting a flavor / AZ re-points LBs at these "DELETED" placeholder rows.
            placeholder = "DELETED-PLACEHOLDER"
            session.add(
                models.FlavorProfile(
                    id=constants.NIL_UUID,
                    name=placeholder,
                    provider_name=constants.DELETED,
                    flavor_data="{}",
                )
            )
            session.flush()
            session.add(
                models.Flavor(
                    id=constants.NIL_UUID,
                    flavor_profile_id=constants.NIL_UUID,
                    name=placeholder,
                    enabled=False,
                    description="Placeholder for DELETED LBs with DELETED flavors",
                )
            )
            session.add(
                models.AvailabilityZoneProfile(
                    id=constants.NIL_UUID,
                    name=placeholder,
                    provider_name=constants.DELETED,
                    availability_zone_data="{}",
                )
            )
            session.flush()
            session.add(
                models.AvailabilityZone(
                    availability_zone_profile_id=constants.NIL_UUID,
                    name=constants.NIL_UUID,
                    enabled=False,
                    description="Placeholder for DELETED LBs with DELETED availability zones",
                )
            )
    finally:
        session.close()
        engine.dispose()
