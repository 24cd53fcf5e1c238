"""waystation: a plugin-based pipeline engine for lead enrichment.

The public names; everything a plugin author needs is importable from here.
"""

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

__version__ = "0.1.0"

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
