"""A plugin module for the CLI output tests: stations with long names, many fields and a docstring
that looks like rich markup. Loaded with ``WAYSTATION_EXTRA_PLUGINS=longnames``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from waystation import Outcome, Station, StationSettings, StepContext, hookimpl

WAYSTATION_API = ">=1,<2"


class LongSettings(StationSettings):
    """Settings with a secret read from the environment."""

    model_config = SettingsConfigDict(env_prefix="WAYSTATION_LONG_")
    api_key: SecretStr | None = Field(default=None, description="The vendor key.")
    threshold: int = Field(default=3, description="How many [bold]tries[/bold].")


class IdentityResolutionStationWithAVeryLongName(Station):
    """Resolves identities [red]not markup[/red] and keeps [link=x]brackets[/link] as text."""

    name = "IdentityResolutionStationWithAVeryLongName"
    requires = ("first_name", "last_name")
    provides: ClassVar[dict[str, Any]] = {f"field_number_{i}_with_a_long_name": str for i in range(12)}
    cost = 0.0123
    Settings = LongSettings

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome()


class DoNotCallRegistryScrubbingStationLongName(Station):
    """A second long name."""

    name = "DoNotCallRegistryScrubbingStationLongName"
    requires = ("phone",)
    provides: ClassVar[dict[str, Any]] = {"dnc_listed": bool}

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome()


class Short(Station):
    """Short."""

    name = "Short"
    provides: ClassVar[dict[str, Any]] = {"short": str}

    async def process(self, ctx: StepContext) -> Outcome:
        return Outcome({"short": "x"})


NAMES = [IdentityResolutionStationWithAVeryLongName.name, DoNotCallRegistryScrubbingStationLongName.name, "Short"]


@hookimpl
def register_stations() -> list[type[Station]]:
    """The three stations."""
    return [IdentityResolutionStationWithAVeryLongName, DoNotCallRegistryScrubbingStationLongName, Short]
