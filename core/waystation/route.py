"""Routes: the YAML a user writes, validated by pydantic, with the line of every key kept.

YAML is read with a safe loader that knows no Python tags and resolves plain scalars by YAML 1.2
rules: ``02142`` stays the text "02142", ``yes``/``no``/``on``/``off`` stay text, only
``true``/``false`` are booleans.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from waystation.errors import Problem, RouteError

Position = tuple[int, int]  # 1-based line, column
Loc = tuple[str | int, ...]


class _RouteLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars."""


_RouteLoader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+|0o[0-7]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+0123456789.")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    _RouteLoader.add_implicit_resolver(_tag, re.compile(_regexp), _first)


def _leading_zero_int(value: str) -> bool:
    return bool(re.fullmatch(r"[-+]?0[0-9]+", value))


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


def _to_python(node: yaml.Node, loader: _RouteLoader, loc: Loc, positions: dict[Loc, Position]) -> Any:
    positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag!r} is not allowed", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark)
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            child: Loc = (*loc, str(key))
            out[key] = _to_python(value_node, loader, child, positions)
            positions[(*child, "__key__")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, loader, (*loc, i), positions) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(node, yaml.ScalarNode) \
            and _leading_zero_int(node.value):
        return node.value
    return value


def load_yaml(text: str, file: str | None = None) -> tuple[Any, dict[Loc, Position]]:
    """Parse YAML text safely, returning the data and the (line, column) of every path in it."""
    loader = _RouteLoader(text)
    positions: dict[Loc, Position] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions
        return _to_python(node, loader, (), positions), positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise RouteError([Problem(f"invalid YAML: {exc.problem or exc}", file, line, col)]) from None
    except yaml.YAMLError as exc:
        raise RouteError([Problem(f"invalid YAML: {exc}", file)]) from None
    finally:
        loader.dispose()


class StepSpec(BaseModel):
    """One step of a route as written in YAML."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    station: str = Field(min_length=1)
    id: str | None = Field(default=None, min_length=1)
    enabled: bool = True
    condition: str | None = None
    fallback: bool | list[str] = False
    settings: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["continue", "fail"] = "continue"
    after: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, ge=0)
    retry: dict[str, Any] | None = None
    breaker: dict[str, Any] | Literal[False] | None = None
    rate_limit: dict[str, Any] | None = None
    in_doubt: Literal["recheck", "repay", "skip"] | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def step_id(self) -> str:
        """The step's id (its station name unless ``id:`` is given)."""
        return self.id or self.station


class RouteSpec(BaseModel):
    """A whole route as written in YAML."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    description: str | None = None
    budget: float | None = Field(default=None, ge=0)
    validation: Literal["off", "warn", "strict"] = Field(default="warn", alias="validate")
    input: list[str] | None = None
    steps: list[StepSpec] = Field(min_length=1)


class Route:
    """A loaded route: its validated spec, the file it came from and where each key stands."""

    def __init__(self, spec: RouteSpec, file: str | None = None,
                 positions: dict[Loc, Position] | None = None) -> None:
        self.spec = spec
        self.file = file
        self.positions = positions or {}

    @property
    def name(self) -> str:
        """The route's name."""
        return self.spec.name

    def position(self, *loc: str | int) -> Position | None:
        """The (line, column) of the value at ``loc``, or of its nearest enclosing value."""
        path: Loc = tuple(loc)
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, message: str, *loc: str | int, column_offset: int | None = None) -> Problem:
        """A :class:`Problem` located at ``loc`` in this route's file."""
        pos = self.position(*loc)
        line, col = pos if pos else (None, None)
        if col is not None and column_offset is not None:
            col += column_offset
        return Problem(message, self.file, line, col)

    @classmethod
    def from_text(cls, text: str, file: str | None = None) -> Route:
        """Load a route from YAML text; raises :class:`RouteError` with file and line."""
        data, positions = load_yaml(text, file)
        if not isinstance(data, dict):
            raise RouteError([Problem("a route must be a mapping with name and steps", file, 1, 1)])
        try:
            spec = RouteSpec.model_validate(data)
        except ValidationError as exc:
            route = cls(RouteSpec.model_construct(name="?", steps=[]), file, positions)
            problems = []
            for err in exc.errors():
                loc = tuple(err["loc"])
                where = ".".join(str(p) for p in loc)
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = f"unknown key {loc[-1]!r}"
                    key_pos = positions.get((*[str(p) if not isinstance(p, int) else p for p in loc],
                                             "__key__"))
                    if key_pos:
                        problems.append(Problem(f"{where}: {msg}", file, *key_pos))
                        continue
                problems.append(route.problem(f"{where}: {msg}", *loc))
            raise RouteError(problems) from None
        return cls(spec, file, positions)

    @classmethod
    def from_file(cls, path: str | Path) -> Route:
        """Load a route from a YAML file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise RouteError([Problem(f"cannot read route: {exc.strerror or exc}", str(p))]) from None
        except UnicodeDecodeError as exc:
            raise RouteError([Problem(f"route is not UTF-8 text: {exc}", str(p))]) from None
        return cls.from_text(text, str(p))
