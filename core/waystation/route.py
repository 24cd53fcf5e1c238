"""Routes: the YAML a user writes, validated by pydantic, with the line of every key kept.

YAML is read with a safe loader that knows no Python tags and resolves plain scalars by YAML 1.2
rules: ``02142`` stays the text "02142", ``yes``/``no``/``on``/``off`` stay text, only
``true``/``false`` are booleans.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from waystation.errors import Problem, RouteError
from waystation.limits import MAX_ROUTE_BYTES, MAX_ROUTE_DEPTH, MAX_ROUTE_NODES, MAX_STEPS

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


class _Budget:
    """Counts the nodes built (an alias counts once per use) so that an expansion bomb stops early."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_ROUTE_NODES

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise _limit(f"the route expands to more than {MAX_ROUTE_NODES:,} YAML nodes (limit; aliases "
                         "count once per use)", node)


def _to_python(node: yaml.Node, loader: _RouteLoader, loc: Loc, positions: dict[Loc, Position],
               budget: _Budget | None = None) -> Any:
    budget = budget or _Budget()
    budget.spend(node)
    positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag!r} is not allowed", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark)
            budget.spend(key_node)
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark)
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            child: Loc = (*loc, str(key))
            out[key] = _to_python(value_node, loader, child, positions, budget)
            positions[(*child, "__key__")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, loader, (*loc, i), positions, budget) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(node, yaml.ScalarNode) \
            and _leading_zero_int(node.value):
        return node.value
    return value


_EventLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present: ~15x faster


class _LimitError(yaml.MarkedYAMLError):
    """A route beyond one of the limits of :mod:`waystation.limits`."""


def _limit(message: str, event: yaml.Event | yaml.Node) -> _LimitError:
    mark: Any = event.start_mark  # a yaml.Mark, or libyaml's own Mark for events from its parser
    return _LimitError(None, None, message, mark)


def _prescan(text: str, loader: Any = None) -> None:
    """Walk the YAML events (the parser is iterative, PyYAML's composer recursive) and refuse,
    before anything is composed: nesting deeper than :data:`MAX_ROUTE_DEPTH`, more than
    :data:`MAX_ROUTE_NODES` nodes, more than :data:`MAX_STEPS` items under the top-level ``steps``."""
    # one frame per open collection: [is a mapping, next node is a key, is the top-level steps list]
    stack: list[list[bool]] = []
    nodes = steps = 0
    top_key: object = None
    if loader is None:
        try:
            _prescan(text, _EventLoader)
        except _LimitError:
            raise
        except yaml.YAMLError:
            if _EventLoader is yaml.SafeLoader:
                raise
            # libyaml words syntax errors its own way: walk again with PyYAML's parser, whose errors
            # (the ones the composer would raise) are the ones users are shown
            _prescan(text, yaml.SafeLoader)
        return
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        nodes += 1
        if nodes > MAX_ROUTE_NODES:
            raise _limit(f"the route has more than {MAX_ROUTE_NODES:,} YAML nodes (limit)", event)
        parent = stack[-1] if stack else None
        is_steps = False
        if parent is not None:
            if parent[2]:
                steps += 1
                if steps > MAX_STEPS:
                    raise _limit(f"the route has more than {MAX_STEPS} steps (limit)", event)
            if parent[0]:
                if parent[1] and len(stack) == 1:
                    top_key = getattr(event, "value", None)
                elif not parent[1] and len(stack) == 1:
                    is_steps = top_key == "steps" and isinstance(event, yaml.SequenceStartEvent)
                parent[1] = not parent[1]
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_ROUTE_DEPTH:
                raise _limit(f"the route nests mappings and lists more than {MAX_ROUTE_DEPTH} deep (limit)", event)
            stack.append([isinstance(event, yaml.MappingStartEvent), True, is_steps])


_YAML_PROBLEMS = (
    ("expected <block end>", "the indentation does not match the lines above (indent with spaces, "
                             "the same amount for keys of one mapping)"),
    ("mapping values are not allowed", "a ':' where no key can start (check the indentation, or quote a "
                                       "value that contains ': ')"),
    ("cannot start any token", "a character YAML cannot start a value with (a tab? indent with spaces; "
                               "quote values starting with @ or `)"),
    ("could not find expected ':'", "a key without ':' (or an unclosed quote on an earlier line)"),
    ("found unexpected end of stream", "the file ends inside a quote or a bracket"),
    ("did not find expected key", "a key at the wrong indentation (keys of one mapping start at the same "
                                  "column)"),
    ("did not find expected '-' indicator", "the indentation does not match the lines above (items of one "
                                            "list start with '- ' at the same column)"),
    ("while parsing a flow", "an unclosed [ or {"),
    ("did not find expected ',' or", "an unclosed [ or {, or a missing comma"),
)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str | None:
    """PyYAML's wording of a common mistake in plain words (``None``: keep PyYAML's)."""
    raw = f"{exc.context + ', ' if exc.context else ''}{exc.problem or exc}"
    for needle, plain in _YAML_PROBLEMS:
        if needle in raw:
            return plain
    return None


def load_yaml(text: str, file: str | None = None) -> tuple[Any, dict[Loc, Position]]:
    """Parse YAML text safely, returning the data and the (line, column) of every path in it.

    Bounded (see :mod:`waystation.limits`): the text's size, its nesting depth and the number of
    nodes it expands to (aliases included) are checked before and while it is built."""
    if len(text) > MAX_ROUTE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_ROUTE_BYTES:
        raise RouteError([Problem(f"the route is larger than {MAX_ROUTE_BYTES:,} bytes (limit)", file)])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RouteError([Problem(f"the route is not valid text: a lone surrogate at character {exc.start + 1}",
                                  file)]) from None
    loader: _RouteLoader | None = None
    positions: dict[Loc, Position] = {}
    try:
        _prescan(text)
        loader = _RouteLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, positions
        return _to_python(node, loader, (), positions), positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = " ".join(str(exc.problem or exc).split())
        if isinstance(exc, _LimitError):
            raise RouteError([Problem(str(what), file, line, col)]) from None
        plain = _yaml_problem(exc)
        if plain is None:
            raise RouteError([Problem(f"invalid YAML: {what}", file, line, col)]) from None
        lines = text.splitlines()
        text_line = lines[line - 1].strip() if line and line <= len(lines) else ""
        shown = f" in `{text_line[:60]}`" if text_line else ""
        raise RouteError([Problem(f"invalid YAML{shown}: {plain}", file, line, col)]) from None
    except yaml.YAMLError as exc:
        raise RouteError([Problem(f"invalid YAML: {' '.join(str(exc).split())}", file)]) from None
    finally:
        if loader is not None:
            loader.dispose()


CacheModeName = Literal["off", "read", "read-write"]


class StepCacheSpec(BaseModel):
    """A step's ``cache:`` mapping: ``ttl`` (``30d``, ``12h``, seconds) and ``mode``."""

    model_config = ConfigDict(extra="forbid")

    ttl: str | float | None = None
    mode: CacheModeName | None = None

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            from waystation.cache import parse_ttl

            parse_ttl(value)
        return value


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
    cache: StepCacheSpec | None = None

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_mode_alone(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value
    gate: bool | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def step_id(self) -> str:
        """The step's id (its station name unless ``id:`` is given)."""
        return self.id or self.station


#: Old spellings of route keys, still read for one release with a warning: old -> new.
DEPRECATED_KEYS = {"validate": "validation"}


class RouteSpec(BaseModel):
    """A whole route as written in YAML."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    description: str | None = None
    budget: float | None = Field(default=None, ge=0)
    validation: Literal["off", "warn", "strict"] = Field(
        default="warn", validation_alias=AliasChoices("validation", "validate"))
    input: list[str] | None = None
    cache: CacheModeName | None = None
    map: dict[str, str] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)


class Route:
    """A loaded route: its validated spec, the file it came from and where each key stands."""

    def __init__(self, spec: RouteSpec, file: str | None = None,
                 positions: dict[Loc, Position] | None = None) -> None:
        self.spec = spec
        self.file = file
        self.positions = positions or {}
        #: The folder relative data paths of the route are read from (see :attr:`data_dir`); set it
        #: for a route loaded from text that came from a file (a worker's stored route).
        self.base_dir: str | None = None
        #: Problems that do not stop the route (deprecated spellings); the plan reports them.
        self.warnings: list[Problem] = []

    @property
    def name(self) -> str:
        """The route's name."""
        return self.spec.name

    @property
    def data_dir(self) -> str | None:
        """The folder that relative data paths in the route (a station's ``data_settings``) are
        resolved against: :attr:`base_dir`, else the route file's folder, else ``None`` (the
        current directory)."""
        if self.base_dir:
            return self.base_dir
        if self.file and not self.file.startswith("<"):
            return str(Path(self.file).resolve().parent)
        return None

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
        steps = data.get("steps")
        if isinstance(steps, list) and len(steps) > MAX_STEPS:
            line, col = positions.get(("steps",), (None, None))
            raise RouteError([Problem(f"the route has {len(steps):,} steps, more than the limit of {MAX_STEPS}",
                                      file, line, col)])
        renamed = [(old, new) for old, new in DEPRECATED_KEYS.items() if old in data]
        for old, new in renamed:
            if new in data:
                line, col = positions.get((old, "__key__"), (None, None))
                raise RouteError([Problem(f"both {new!r} and its old spelling {old!r} are given: keep {new!r}",
                                          file, line, col)])
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
                    known = list(StepSpec.model_fields if "steps" in loc else RouteSpec.model_fields)
                    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.7)
                    msg = f"unknown key {loc[-1]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                    key_pos = positions.get((*[str(p) if not isinstance(p, int) else p for p in loc],
                                             "__key__"))
                    if key_pos:
                        problems.append(Problem(f"{where}: {msg}", file, *key_pos))
                        continue
                problems.append(route.problem(f"{where}: {msg}", *loc))
            raise RouteError(problems) from None
        route = cls(spec, file, positions)
        for old, new in renamed:
            line, col = positions.get((old, "__key__"), (None, None))
            route.warnings.append(Problem(f"{old!r} is deprecated and will be removed in the next release: "
                                          f"write {new!r}", file, line, col))
        return route

    @classmethod
    def from_file(cls, path: str | Path) -> Route:
        """Load a route from a YAML file."""
        p = Path(path)
        try:
            with p.open("rb") as f:
                raw = f.read(MAX_ROUTE_BYTES + 1)
            if len(raw) > MAX_ROUTE_BYTES:
                raise RouteError([Problem(f"the route is larger than {MAX_ROUTE_BYTES:,} bytes (limit)", str(p))])
            text = raw.decode("utf-8")
        except OSError as exc:
            raise RouteError([Problem(f"cannot read route: {exc.strerror or exc}", str(p))]) from None
        except UnicodeDecodeError as exc:
            raise RouteError([Problem(f"route is not UTF-8 text: {exc}", str(p))]) from None
        return cls.from_text(text, str(p))
