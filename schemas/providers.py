"""The provider kinds: which signature scheme (and verifier) a webhook source uses.

The settings validate ``providers.<name>.kind`` against :data:`ProviderKind`; the edge builds one
verifier per kind (:mod:`services.edge.verifiers`). A new kind is added here, once.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["KINDS", "ProviderKind"]

ProviderKind = Literal["stripe", "github", "shopify", "sendgrid", "paypal", "standard"]
KINDS: tuple[ProviderKind, ...] = get_args(ProviderKind)
