"""waystation-rapidapi: the RapidAPI "Skip Tracing Working API" station for waystation."""

from waystation_rapidapi.station import (
    DETAILS_PRICE,
    SEARCH_PRICE,
    LeadKeys,
    RapidApiStation,
    SkipTracingSettings,
    SkipTracingStation,
    rank_phones,
    score_candidate,
    to_e164,
)

__all__ = [
    "DETAILS_PRICE",
    "SEARCH_PRICE",
    "LeadKeys",
    "RapidApiStation",
    "SkipTracingSettings",
    "SkipTracingStation",
    "rank_phones",
    "score_candidate",
    "to_e164",
]
