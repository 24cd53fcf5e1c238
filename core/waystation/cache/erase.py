"""The lookup cache's part of ``waystation forget``: a ``forget_person`` hook implementation.

Registered by the core (as ``waystation.cache``). It erases, from the cache beside the request's
checkpoint store (or ``WAYSTATION_CACHE`` / ``request.options["cache"]``), every entry holding one
of the person's phone numbers or e-mail addresses (among the inputs or the returned fields) or
stored by one of their lead ids. Entries are matched by hashed tokens
(:func:`waystation.cache.keys.subject_tokens`).
"""

from __future__ import annotations

from waystation.cache.keys import subject_token
from waystation.forget import Erasure, ForgetRequest
from waystation.hooks import hookimpl


def request_tokens(request: ForgetRequest) -> list[str]:
    """The subject tokens that name the person of ``request``."""
    return ([subject_token("phone", p) for p in request.phones] + [subject_token("email", e) for e in request.emails]
            + [subject_token("lead", i) for i in request.lead_ids])


class CacheEraser:
    """``forget_person`` for the lookup cache."""

    @hookimpl
    async def forget_person(self, request: ForgetRequest) -> list[Erasure]:
        """Erase the person's cached vendor answers."""
        from waystation.cache import default_cache_url, open_cache
        from waystation.stores import redact_url

        url = str(request.options.get("cache") or default_cache_url(request.checkpoint))
        cache = open_cache(url)
        try:
            if not await cache.used():
                return []  # no cache there: nothing to erase (and nothing is created)
            n = await cache.forget(request_tokens(request), dry_run=request.dry_run)
        finally:
            await cache.close()
        return [Erasure(f"lookup cache {redact_url(url)}", "cached vendor answers", n)]
