"""Every exception Breakwater defines sits in the one tree under ``BreakwaterError`` (services/errors.py).

The walk imports every module of ``services``, ``streams`` and ``schemas`` and then follows
``BaseException``'s subclasses, so a class defined anywhere in them (nested ones too) is found.
"""

from __future__ import annotations

import importlib
import pkgutil

from services.errors import BreakwaterError, DeliveryFailed, PermanentError, RetryableError

PACKAGES = ("services", "streams", "schemas")


def _import_everything() -> None:
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    frontier = [cls]
    while frontier:
        for sub in frontier.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                frontier.append(sub)
    return found


def _ours() -> dict[str, type[BaseException]]:
    _import_everything()
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for cls in _subclasses(BaseException)
        if cls.__module__.split(".")[0] in PACKAGES
    }


def test_every_exception_defined_here_derives_from_breakwater_error() -> None:
    ours = _ours()
    assert {"services.config.ConfigError", "services.outbound.errors.RetryableStatus"} <= set(ours)
    outside = {name for name, cls in ours.items() if not issubclass(cls, BreakwaterError)}
    assert outside == set()


def test_delivery_errors_are_one_family_that_names_itself() -> None:
    ours = _ours()
    delivery = {name for name, cls in ours.items() if issubclass(cls, DeliveryFailed)}
    assert delivery >= {
        "services.outbound.errors.CircuitOpen",
        "services.outbound.errors.PermanentStatus",
        "services.reliability.registry.ServiceUnavailable",
    }
    assert RetryableError("down", retry_after=3).retryable
    assert not PermanentError("gone", error_class="http_404").retryable
    named = PermanentError("gone", error_class="http_404", status=404)
    assert (named.error_class, named.status, named.retry_after) == ("http_404", 404, None)
    assert RetryableError("x").error_class == "RetryableError"  # unnamed: the class's name
