"""The condition language of ``condition:``: parsed once at load time, evaluated per lead.

Grammar (keywords are case-insensitive)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | atom
    atom       := "(" expr ")" | test
    test       := FIELD "exists" | FIELD "not" "exists"
                | FIELD OP literal                      OP: == != < <= > >=
                | FIELD ["not"] "in" "[" literal ("," literal)* "]"
    literal    := 'text' | "text" | number | true | false | null
    FIELD      := name ("." name)*                     dots reach into nested mappings

A field *exists* when it is present and neither ``None`` nor an empty string. A comparison with a
missing field, or between values that cannot be compared (text with number), is false. A number
literal compares with a text value that reads as a number ("45" > 30), since CSV gives text.
Nothing here uses Python ``eval``: evaluating a condition only looks keys up in mappings.

Bounded (see :mod:`waystation.limits`): a condition longer than ``MAX_CONDITION_LENGTH``
characters, nested (``not``, parentheses) deeper than ``MAX_CONDITION_DEPTH``, or with a number
literal longer than ``MAX_NUMBER_LENGTH`` characters is refused with a
:class:`~waystation.errors.ConditionSyntaxError` naming the limit; parsing is linear in the length.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from waystation.errors import ConditionSyntaxError
from waystation.limits import MAX_CONDITION_DEPTH, MAX_CONDITION_LENGTH, MAX_NUMBER_LENGTH

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "exists", "in", "true", "false", "null", "none"}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge,
}
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    value: Any
    column: int


def _tokenize(src: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise ConditionSyntaxError(f"unexpected character {src[pos]!r}", src, pos + 1)
        kind = m.lastgroup or ""
        text = m.group()
        col = pos + 1
        pos = m.end()
        if kind == "ws":
            continue
        value: Any = text
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", text[1:-1])
        elif kind == "number":
            if len(text) > MAX_NUMBER_LENGTH:
                raise ConditionSyntaxError(f"a number of {len(text):,} characters is longer than the limit of "
                                           f"{MAX_NUMBER_LENGTH}", src, col)
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif kind == "name" and text.lower() in _KEYWORDS:
            kind = "kw"
            value = text.lower()
        out.append(Token(kind, text, value, col))
    out.append(Token("end", "", None, len(src) + 1))
    return out


def lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path, or a private sentinel when missing."""
    cur: Any = data
    for part in path:
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _present(value: Any) -> bool:
    return value is not _MISSING and value is not None and value != ""


def _coerce(value: Any, literal: Any) -> Any:
    if isinstance(literal, int | float) and not isinstance(literal, bool) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class Condition:
    """A parsed condition; ``evaluate(data)`` is pure and safe to call concurrently."""

    source: str
    fields: frozenset[str]

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        """True when the condition holds for ``data``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Condition {self.source!r}>"


class _Exists(Condition):
    def __init__(self, path: tuple[str, ...], negate: bool) -> None:
        self.path, self.negate = path, negate

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        return _present(lookup(data, self.path)) != self.negate


class _Compare(Condition):
    def __init__(self, path: tuple[str, ...], op: str, literal: Any) -> None:
        self.path, self.op, self.literal = path, _OPS[op], literal
        self.opname = op

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        value = lookup(data, self.path)
        if value is _MISSING:
            value = None
        if self.literal is None or value is None:
            if self.opname == "==":
                return value is self.literal
            if self.opname == "!=":
                return value is not self.literal
            return False
        value = _coerce(value, self.literal)
        try:
            return bool(self.op(value, self.literal))
        except TypeError:
            return False


class _In(Condition):
    def __init__(self, path: tuple[str, ...], items: list[Any], negate: bool) -> None:
        self.path, self.items, self.negate = path, items, negate

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        value = lookup(data, self.path)
        if value is _MISSING:
            return self.negate
        found = any(_coerce(value, item) == item for item in self.items)
        return found != self.negate


class _Bool(Condition):
    def __init__(self, op: str, parts: list[Condition]) -> None:
        self.op, self.parts = op, parts

    def evaluate(self, data: Mapping[str, Any]) -> bool:
        if self.op == "and":
            return all(p.evaluate(data) for p in self.parts)
        if self.op == "or":
            return any(p.evaluate(data) for p in self.parts)
        return not self.parts[0].evaluate(data)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = _tokenize(src)
        self.i = 0
        self.depth = 0
        self.fields: set[str] = set()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_CONDITION_DEPTH:
            raise self.fail(f"the condition nests 'not' and parentheses more than {MAX_CONDITION_DEPTH} deep "
                            "(limit)")

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, msg: str, tok: Token | None = None) -> ConditionSyntaxError:
        t = tok or self.tok
        return ConditionSyntaxError(msg, self.src, t.column)

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def kw(self, word: str) -> bool:
        if self.tok.kind == "kw" and self.tok.value == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Condition:
        if self.tok.kind == "end":
            raise self.fail("empty condition")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail(f"unexpected {self.tok.text!r}")
        return node

    def or_expr(self) -> Condition:
        parts = [self.and_expr()]
        while self.kw("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else _Bool("or", parts)

    def and_expr(self) -> Condition:
        parts = [self.not_expr()]
        while self.kw("and"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else _Bool("and", parts)

    def not_expr(self) -> Condition:
        if self.kw("not"):
            self.enter()
            node = _Bool("not", [self.not_expr()])
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Condition:
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.take()
            self.enter()
            node = self.or_expr()
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                raise self.fail("expected ')'")
            self.take()
            self.depth -= 1
            return node
        if self.tok.kind != "name":
            what = self.tok.text or "end of condition"
            raise self.fail(f"expected a field name, found {what!r}")
        name_tok = self.take()
        path = tuple(name_tok.text.split("."))
        self.fields.add(path[0])
        if self.kw("exists"):
            return _Exists(path, negate=False)
        if self.kw("not"):
            if self.kw("exists"):
                return _Exists(path, negate=True)
            if self.kw("in"):
                return _In(path, self.list_literal(), negate=True)
            raise self.fail("expected 'exists' or 'in' after 'not'")
        if self.kw("in"):
            return _In(path, self.list_literal(), negate=False)
        if self.tok.kind == "op":
            op = self.take().text
            return _Compare(path, op, self.literal())
        raise self.fail(f"expected 'exists', 'not exists', 'in' or a comparison after {name_tok.text!r}")

    def literal(self) -> Any:
        t = self.tok
        if t.kind in ("string", "number"):
            self.take()
            return t.value
        if t.kind == "kw" and t.value in ("true", "false", "null", "none"):
            self.take()
            return {"true": True, "false": False, "null": None, "none": None}[t.value]
        what = t.text or "end of condition"
        raise self.fail(f"expected a value (text in quotes, number, true, false, null), found {what!r}")

    def list_literal(self) -> list[Any]:
        if not (self.tok.kind == "punct" and self.tok.text == "["):
            raise self.fail("expected '[' to start a list")
        self.take()
        items = [self.literal()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.take()
            items.append(self.literal())
        if not (self.tok.kind == "punct" and self.tok.text == "]"):
            raise self.fail("expected ',' or ']' in list")
        self.take()
        return items


def parse_condition(source: str) -> Condition:
    """Parse ``source``; raises :class:`~waystation.errors.ConditionSyntaxError` with a column."""
    if not isinstance(source, str):
        raise ConditionSyntaxError(f"a condition must be text, not {type(source).__name__}", str(source)[:80], 1)
    if len(source) > MAX_CONDITION_LENGTH:
        raise ConditionSyntaxError(f"the condition is {len(source):,} characters, longer than the limit of "
                                   f"{MAX_CONDITION_LENGTH:,}", source[:80] + "...", 1)
    parser = _Parser(source)
    node = parser.parse()
    node.source = source
    node.fields = frozenset(parser.fields)
    return node
