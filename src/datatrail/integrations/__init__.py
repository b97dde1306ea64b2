"""Integrations: Prefect, Dagster, OpenTelemetry, logging and structlog.

Each integration is a module of its own that imports its library when used, so
``import datatrail`` never pulls Prefect or Dagster in. Set-up is one call::

    datatrail.integrations.prefect.install()          # flows and tasks become runs
    logging.getLogger().addFilter(datatrail.integrations.logging.DatatrailFilter())
"""

__all__: list[str] = []
