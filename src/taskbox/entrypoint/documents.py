"""JSON/YAML text -> plain values, for every document a user gives ``taskbox run`` (inputs, templates, configs).

Why: a few hundred bytes of YAML can stand for billions of nodes (aliases: "billion laughs"; merge keys
copy while PyYAML builds), and a scalar PyYAML recognises may still be impossible to build (an integer
past Python's 4300-digit limit, a date in year 0). Parsed naively, the first runs until the pod is
killed and the second escapes as a ``ValueError`` (a retried SYSTEM error). Here both are the
document's :class:`~taskbox.errors.ConfigError`, which callers re-raise as their own USER error.

Invariants:
    * JSON first; YAML (a superset) only when the text is not JSON and YAML is allowed.
    * YAML goes through a ``SafeLoader`` subclass that, before anything is built, refuses a document
      whose aliases add more than :data:`ALIAS_EXPANSION_BUDGET` units (one per node plus one per
      character of scalar text, counted once per reference) or that holds an alias of a node containing
      it. A document without aliases is not measured (its size is its own, capped by the caller).
    * An integer longer than Python's digit limit, in JSON or YAML, is refused with a message naming the
      limit; any other scalar PyYAML cannot build (``ValueError``, ``ArithmeticError``) is refused too.
    * Nesting too deep for the parser is refused (``RecursionError`` never escapes).
    * PyYAML is imported only when a YAML document is read.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from taskbox.errors import ConfigError

__all__ = ["ALIAS_EXPANSION_BUDGET", "check_alias_expansion", "parse_document"]

#: How much YAML aliases may add to a document: one unit per node plus one per character of scalar text
#: (about a megabyte written out). A document that uses no alias is not measured.
ALIAS_EXPANSION_BUDGET = 1_000_000


def _digit_limit() -> int:
    return sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0


def _is_digit_limit(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "integer string conversion" in str(exc)


def parse_document(text: str, *, yaml_ok: bool = True, what: str = "document") -> Any:
    """Parse JSON, or YAML when the text is not JSON (YAML is a superset of JSON).

    Raises:
        ConfigError: Neither parses, the YAML expands its aliases past :data:`ALIAS_EXPANSION_BUDGET`
            or refers to itself, or the text is YAML and PyYAML is not installed.

    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        if _is_digit_limit(exc):
            exc = ValueError(f"it holds an integer of more than {_digit_limit()} digits")
        if not yaml_ok:
            raise ConfigError(f"{what} is not valid JSON: {exc}") from None
        json_error = exc
    try:
        import yaml  # lazy: only YAML documents pay for PyYAML
    except ModuleNotFoundError:
        raise ConfigError(
            f"{what} is not JSON ({json_error}); reading YAML needs PyYAML: pip install 'taskbox[run]'"
        ) from None
    try:
        return yaml.load(text, Loader=_bounded_loader())
    except _AliasBomb as exc:
        raise ConfigError(f"{what} {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is neither JSON nor YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply") from None
    except (ValueError, ArithmeticError) as exc:  # a scalar PyYAML recognised but cannot build
        raise ConfigError(f"{what} holds a value YAML cannot build: {exc}") from None


class _AliasBomb(Exception):
    """A YAML document whose aliases expand too far, or contain themselves (the message says which)."""


def _children(node: Any) -> list[Any]:
    value = node.value
    if isinstance(value, str):
        return []
    if value and isinstance(value[0], tuple):  # a mapping: (key, value) node pairs
        return [item for pair in value for item in pair]
    return list(value)


def check_alias_expansion(root: Any, budget: int | None = None) -> None:
    """Refuse a YAML node graph that aliases expand by more than ``budget`` units, or that is cyclic.

    A node's weight is 1, plus its scalar text's length, plus its children's weights counted once per
    reference; the expansion is the root's weight minus the weight of the distinct nodes. Walked
    iteratively, each distinct node once, stopping at the first subtree past the budget.

    Raises:
        _AliasBomb: Past the budget (default :data:`ALIAS_EXPANSION_BUDGET`), or an alias refers to a
            node that contains it.

    """
    budget = ALIAS_EXPANSION_BUDGET if budget is None else budget
    weights: dict[int, int] = {}
    distinct = 0
    open_nodes: set[int] = set()  # nodes whose subtree is being walked: the current path
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        own = 1 + (len(node.value) if isinstance(node.value, str) else 0)
        if finished:
            open_nodes.discard(key)
            weight = own + sum(weights[id(child)] for child in _children(node))
            weights[key] = weight
            distinct += own
            if weight > distinct + budget:  # sound early: the whole document's expansion is at least this
                raise _AliasBomb(f"expands its aliases past {budget} nodes and characters (an alias bomb?)")
            continue
        if key in weights:
            continue
        if key in open_nodes:
            raise _AliasBomb("has an alias that refers to itself (a node that contains its own alias)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)) if id(child) not in weights)


_LOADER: Any = None


def _bounded_loader() -> Any:
    """PyYAML's ``SafeLoader``, measuring alias expansion and translating scalars it cannot build."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
            return super().compose_node(parent, index)

        def construct_document(self, node: Any) -> Any:
            if self.aliases:  # before anything is built: merge keys copy while constructing
                check_alias_expansion(node)
            return super().construct_document(node)

        def construct_yaml_int(self, node: Any) -> Any:
            limit = _digit_limit()
            if limit and len(node.value) > limit:
                raise yaml.constructor.ConstructorError(
                    None, None, f"an integer of {len(node.value)} characters (at most {limit} digits)", node.start_mark
                )
            try:
                return super().construct_yaml_int(node)
            except ValueError as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read the integer: {exc}", node.start_mark
                ) from None

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    _LOADER = BoundedLoader
    return _LOADER
