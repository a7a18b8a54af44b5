"""Calling third-party and internal APIs safely: adaptive rate limits, retries, circuit breakers.

Import from the modules (``services.outbound.client``, ``.config``, ``.errors``): the root settings
import ``services.outbound.config``, and this package must then not load the client with it.
"""
