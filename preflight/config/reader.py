"""Composes YAML text into nodes and reads them into typed values, so that every error names file, line and field.

Environment references (${NAME}) expand here; a shell's $NAME is taken literally, with a warning.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from preflight.config.fields import REGION_PATTERN, TARGET_NAME_PATTERN, Field, field_names, field_of
from preflight.engine.text import shorten
from preflight.errors import ConfigError

MAX_NODES = 20_000
MAX_DEPTH = 64
TOO_DEEP = f"the document nests too deeply to be a config (more than {MAX_DEPTH} levels)"
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_ENV_ANYWHERE = re.compile(r"\$\{([^}]*)\}")
ENV_UNBRACED = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")  # $NAME: a shell's spelling, taken literally here

T = TypeVar("T")


class Reader:
    """Walks composed YAML nodes, so that every value keeps its line number."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.warnings: list[str] = []

    def error(self, node: Any, field_path: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None and getattr(node, "start_mark", None) else None
        return ConfigError(_one_line(message), path=self.path, line=line, field=_one_line(field_path) or None)

    def mapping(self, node: Any, field_path: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field_path, f"expected a mapping, got {node_kind(node)}")
        entries: dict[str, tuple[Any, Any]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, field_path, "keys must be plain names")
            key = str(key_node.value)
            sub = f"{field_path}.{key}" if field_path else key
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                tip = f"; did you mean '{hint[0]}'?" if hint else f"; expected one of {', '.join(allowed)}"
                raise self.error(key_node, sub, f"unknown field{tip}")
            if key in entries:
                raise self.error(key_node, sub, "appears twice")
            entries[key] = (key_node, value_node)
        return entries

    def scalar(self, node: Any, field_path: str) -> Any:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, field_path, f"expected a single value, got {node_kind(node)}")
        if node.tag == "tag:yaml.org,2002:null" or (not node.style and node.value in ("", "~", "null")):
            return None
        if not node.style and node.tag == "tag:yaml.org,2002:int":
            return _yaml_int(node.value)
        if not node.style and node.tag == "tag:yaml.org,2002:bool":
            return node.value.lower() in ("true", "yes", "on")
        if not node.style and node.tag == "tag:yaml.org,2002:float":
            return _yaml_float(node.value)
        return str(node.value)

    def string(self, node: Any, field_path: str, *, required: bool = False,
               choices: tuple[str, ...] | None = None, env: bool = False) -> str | None:
        value = self.scalar(node, field_path)
        if value is None:
            if required:
                raise self.error(node, field_path, "is required")
            return None
        if isinstance(value, bool):
            raise self.error(node, field_path, "expected text, got a boolean")
        text = str(value)
        if env:
            text = self.expand(node, field_path, text)
        if choices is not None and text not in choices:
            raise self.error(node, field_path, f"expected one of {', '.join(choices)}")
        return text

    def warn(self, node: Any, field_path: str, message: str) -> None:
        """A config warning, named like an error (file:line: field: message), shown with the run's notes."""
        line = node_line(node)
        where = f"{self.path}:{line}" if line is not None else self.path
        self.warnings.append(f"{where}: {_one_line(field_path)}: {_one_line(message)}")

    def expand(self, node: Any, field_path: str, text: str) -> str:
        unbraced = ENV_UNBRACED.match(text)
        if unbraced:
            name = unbraced.group(1)
            # Not quoting the value: it becomes the key, a secret, and would be masked in the message.
            self.warn(node, field_path, "an environment reference without braces is taken literally (only the "
                                        f"${{NAME}} spelling is expanded); to read the variable, write ${{{name}}}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise self.error(node, field_path, f"'${{{name}}}' is not a valid environment variable name")
            if name not in self.environ:
                raise self.error(node, field_path, f"environment variable {name} is not set")
            return self.environ[name]

        return _ENV_ANYWHERE.sub(substitute, text)

    def integer(self, node: Any, field_path: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        """A whole number written as one, or a whole ${NAME} reference to one; any other text is refused alike,
        quoted digits ("1024") included."""
        value = self._numeric(node, field_path, "a whole number", int)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(node, field_path, "expected a whole number")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise self.error(node, field_path, f"expected a whole number {bound}")
        return value

    def number(self, node: Any, field_path: str, *, minimum: float = 0.0) -> float:
        """A number written as one, or a whole ${NAME} reference to one, as integer() takes them."""
        value = self._numeric(node, field_path, "a number", float)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(node, field_path, "expected a number")
        if value < minimum or value != value or value in (float("inf"), float("-inf")):
            raise self.error(node, field_path, f"expected a finite number of at least {minimum}")
        return float(value)

    def _numeric(self, node: Any, field_path: str, what: str, parse: Callable[[str], Any]) -> Any:
        """The scalar of a numeric field; text only as a whole ${NAME} reference, whose value is parsed."""
        value = self.scalar(node, field_path)
        if not isinstance(value, str):
            return value
        reference = ENV_REF.match(value)
        if reference is None:
            raise self.error(node, field_path, f"expected {what}, got the text '{shorten(value, 40)}'"
                                               f"{_numeric_hint(value, parse)}")
        text = self.expand(node, field_path, value)
        try:
            return parse(text.strip())
        except ValueError:
            raise self.error(node, field_path, f"expected {what} in ${{{reference.group(1)}}}") from None

    def sequence(self, node: Any, field_path: str) -> list[Any]:
        import yaml

        if self.scalar_is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, field_path, f"expected a list, got {node_kind(node)}")
        return list(node.value)

    def scalar_is_null(self, node: Any) -> bool:
        import yaml

        return isinstance(node, yaml.ScalarNode) and self.scalar(node, "") is None

    def strings(self, node: Any, field_path: str) -> tuple[str, ...]:
        items = []
        for index, item in enumerate(self.sequence(node, field_path)):
            value = self.string(item, f"{field_path}[{index}]", required=True, env=True)
            assert value is not None
            items.append(value)
        return tuple(items)

    def section(self, node: Any, field_path: str, allowed: tuple[str, ...],
                build: Callable[[dict[str, tuple[Any, Any]]], T], default: T) -> T:
        if node is None or self.scalar_is_null(node):
            return default
        return build(self.mapping(node, field_path, allowed))

    def fields(self, node: Any, field_path: str, fields: tuple[Field, ...]) -> dict[str, tuple[Any, Any]]:
        """A mapping of the table's `fields`, its required ones present."""
        entries = self.mapping(node, field_path, field_names(fields))
        for spec in fields:
            if spec.required and spec.name not in entries:
                raise self.error(node, f"{field_path}.{spec.name}" if field_path else spec.name, "is required")
        return entries

    def value(self, m: dict[str, tuple[Any, Any]], fields: tuple[Field, ...], name: str, field_path: str) -> Any:
        """The value of a scalar field as the table defines it, or its default when the mapping lacks it."""
        spec = field_of(fields, name)
        if name not in m:
            return spec.default
        node = m[name][1]
        sub = f"{field_path}.{name}" if field_path else name
        if spec.type in ("integer", "number") and spec.accepts_null and self.scalar_is_null(node):
            return None
        if spec.type == "integer":
            number = self.integer(node, sub, minimum=int(spec.minimum or 0), maximum=spec.maximum)
            if spec.const is not None and number != spec.const:
                raise self.error(node, sub, f"expected {spec.const} (the only config {name} so far)")
            return number
        if spec.type == "number":
            return self.number(node, sub, minimum=spec.minimum or 0.0)
        if spec.type == "strings":
            return self.strings(node, sub)
        if spec.type == "id":
            return self.ident(node, sub)
        if spec.type == "date":
            return self.date(node, sub)
        text = self.string(node, sub, required=spec.required, choices=spec.choices, env=spec.env)
        if spec.pattern is not None and text is not None and not re.fullmatch(spec.pattern, text):
            raise self.error(node, sub, _PATTERN_MESSAGES.get(spec.pattern, f"expected text like {spec.pattern}"))
        return text if text or spec.default is None else spec.default

    def ident(self, node: Any, field_path: str) -> str | None:
        """An id: text or a whole number, kept as text."""
        value = self.scalar(node, field_path)
        if value is None:
            return None
        if isinstance(value, bool | float):
            raise self.error(node, field_path, "expected an id")
        return self.expand(node, field_path, str(value))

    def date(self, node: Any, field_path: str) -> dt.date:
        """A day written YYYY-MM-DD (YAML's own date, or text)."""
        value = self.scalar(node, field_path)
        if value is None:
            raise self.error(node, field_path, "is required (a date like 2027-01-31)")
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise self.error(node, field_path, f"expected a date like 2027-01-31, got '{shorten(str(value), 40)}'"
                             ) from None


_PATTERN_MESSAGES = {
    REGION_PATTERN: "expected a region id like cn-beijing",
    TARGET_NAME_PATTERN: "use letters, digits, '.', '_' or '-' (at most 64)",
}


def _numeric_hint(text: str, parse: Callable[[str], Any]) -> str:
    """What to write instead of text in a numeric field, when it is plain what was meant."""
    unbraced = ENV_UNBRACED.match(text)
    if unbraced:
        return f"; to read the environment variable, write ${{{unbraced.group(1)}}}"
    try:
        parse(text)
    except ValueError:
        return ""
    return f"; write {text.strip()} without quotes"


def _yaml_int(text: str) -> int | str:
    """An int the way YAML 1.1 writes it; ids with leading zeros and sexagesimal stay text."""
    digits = text.replace("_", "")
    unsigned = digits.lstrip("+-")
    if unsigned[:1] == "0" and unsigned[1:2].isdigit():
        return text  # 0123 is octal to YAML 1.1, and almost surely an id to a person
    try:
        return int(digits, 0)
    except ValueError:
        return text


def _yaml_float(text: str) -> float | str:
    """A float the way YAML writes it (.inf, .nan, 1_000.5); anything else stays text for the field to judge."""
    special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
    try:
        return float(special.get(text.lower(), text.replace("_", "")))
    except ValueError:
        return text


def _one_line(text: str) -> str:
    """Messages quote keys and values from the file; control characters must not break the one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def node_kind(node: Any) -> str:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node is None:
        return "nothing"
    return f"'{node.value}'" if len(str(node.value)) < 40 else "text"


def node_line(node: Any) -> int | None:
    mark = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _count_nodes(root: Any, limit: int) -> None:
    """Refuse alias bombs and very deep or very large documents before anything walks them."""
    import yaml

    seen = 0
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > limit:
            raise ConfigError(f"the document has more than {limit} values (an alias bomb?)", line=node_line(node))
        if depth > MAX_DEPTH:
            raise ConfigError(TOO_DEEP, line=node_line(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def compose(text: str, path: str) -> Any:
    """The root node of config text, or a ConfigError naming the line YAML or the size limits refused."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        loader = loader_class(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "not valid YAML"
        if "nesting depth" in problem:  # the YAML library's own limit, which answers before ours for flow style
            raise ConfigError(TOO_DEEP, path=path, line=line) from None
        raise ConfigError(f"not valid YAML: {_one_line(problem)}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_one_line((str(exc).splitlines() or ['?'])[0])}", path=path) from None
    except RecursionError:
        raise ConfigError(TOO_DEEP, path=path) from None
    if root is None:
        raise ConfigError("the file is empty; see the README for a minimal config", path=path)
    try:
        _count_nodes(root, MAX_NODES)
    except ConfigError as exc:
        raise ConfigError(exc.detail, path=path, line=exc.line) from None
    return root


__all__ = ["ENV_REF", "ENV_UNBRACED", "MAX_DEPTH", "MAX_NODES", "TOO_DEEP", "Reader", "compose", "node_kind",
           "node_line"]
