"""waystation-telnyx: the Telnyx Number Lookup v2 gatekeeper station for waystation."""

from waystation_telnyx.station import (
    CALLER_NAME_PRICE,
    CARRIER_PRICE,
    DEFAULT_REJECT,
    LINE_TYPES,
    LRN_PRICE,
    TelnyxGatekeepStation,
    TelnyxSettings,
    gate_decision,
    to_e164,
)

__all__ = [
    "CALLER_NAME_PRICE",
    "CARRIER_PRICE",
    "DEFAULT_REJECT",
    "LINE_TYPES",
    "LRN_PRICE",
    "TelnyxGatekeepStation",
    "TelnyxSettings",
    "gate_decision",
    "to_e164",
]
