"""waystation: a plugin-based pipeline engine for lead enrichment.

The public names; everything a plugin author needs is importable from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from waystation._version import __version__

if TYPE_CHECKING:  # the names for type checkers; at run time each is imported on first use
    from waystation.budget import Budget
    from waystation.engine import Engine, lead_id_of
    from waystation.errors import (
        AuthError,
        BlockedError,
        OutcomeValidationError,
        PermanentError,
        QuotaExhaustedError,
        RouteError,
        ServerError,
        StepError,
        ThrottledError,
        TransientError,
        VendorTimeout,
    )
    from waystation.hooks import hookimpl, hookspec
    from waystation.plan import Plan, PlannedStep, compile_route
    from waystation.plugins import PLUGIN_API_VERSION, PluginHost
    from waystation.resilience.policies import BreakerPolicy, RateLimit, RetryPolicy
    from waystation.result import LeadResult, RunContext, StepRecord
    from waystation.route import Route
    from waystation.station import Outcome, Station, StationSettings, StepContext, Stop

#: Where each public name lives. ``import waystation`` stays cheap (no engine, no stamina, no
#: pydantic models): ``waystation --help`` and ``waystation.cli`` import only what they use.
_LAZY: dict[str, str] = {
    "Budget": "waystation.budget",
    "Engine": "waystation.engine",
    "lead_id_of": "waystation.engine",
    "AuthError": "waystation.errors",
    "BlockedError": "waystation.errors",
    "OutcomeValidationError": "waystation.errors",
    "PermanentError": "waystation.errors",
    "QuotaExhaustedError": "waystation.errors",
    "RouteError": "waystation.errors",
    "ServerError": "waystation.errors",
    "StepError": "waystation.errors",
    "ThrottledError": "waystation.errors",
    "TransientError": "waystation.errors",
    "VendorTimeout": "waystation.errors",
    "hookimpl": "waystation.hooks",
    "hookspec": "waystation.hooks",
    "Plan": "waystation.plan",
    "PlannedStep": "waystation.plan",
    "compile_route": "waystation.plan",
    "PLUGIN_API_VERSION": "waystation.plugins",
    "PluginHost": "waystation.plugins",
    "BreakerPolicy": "waystation.resilience.policies",
    "RateLimit": "waystation.resilience.policies",
    "RetryPolicy": "waystation.resilience.policies",
    "LeadResult": "waystation.result",
    "RunContext": "waystation.result",
    "StepRecord": "waystation.result",
    "Route": "waystation.route",
    "Outcome": "waystation.station",
    "Station": "waystation.station",
    "StationSettings": "waystation.station",
    "StepContext": "waystation.station",
    "Stop": "waystation.station",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'waystation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "PLUGIN_API_VERSION",
    "AuthError",
    "BlockedError",
    "BreakerPolicy",
    "Budget",
    "Engine",
    "LeadResult",
    "Outcome",
    "OutcomeValidationError",
    "PermanentError",
    "Plan",
    "PlannedStep",
    "PluginHost",
    "QuotaExhaustedError",
    "RateLimit",
    "RetryPolicy",
    "Route",
    "RouteError",
    "RunContext",
    "ServerError",
    "Station",
    "StationSettings",
    "StepContext",
    "StepError",
    "StepRecord",
    "Stop",
    "ThrottledError",
    "TransientError",
    "VendorTimeout",
    "__version__",
    "compile_route",
    "hookimpl",
    "hookspec",
    "lead_id_of",
]
