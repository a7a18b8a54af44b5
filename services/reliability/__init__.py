"""Service reliability: fallbacks, health checks, the dependency graph, reports and alerts.

Import from the modules (``services.reliability.registry``, ``.config``, ...): the root settings import
``services.reliability.config``, and this package must then not load the runtime with it.
"""
