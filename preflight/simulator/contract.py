"""Each simulated action's request contract (method, wire names, query or body, types, required), read from the
installed generated SDKs' sources rather than a copied table, so the simulator and the client cannot share a misreading.

The sources are parsed with `ast`, not imported: "This parameter is required." is only a comment, and importing the
DataWorks models package is slow."""

from __future__ import annotations

import ast
import importlib.util
import re
import textwrap
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

# The generated SDK of each simulated product (the package's import name).
PACKAGES = {
    "dataworks": "alibabacloud_dataworks_public20240518",
    "pvtz": "alibabacloud_pvtz20180101",
    "privatelink": "alibabacloud_privatelink20200415",
    "vpc": "alibabacloud_vpc20160428",
    "sts": "alibabacloud_sts20150401",
}
REQUIRED_MARK = "This parameter is required."
SCALARS = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


class ContractUnavailable(LookupError):
    """The product's SDK is not installed, or it has no such action."""


@dataclass(frozen=True)
class Parameter:
    """One request parameter as the SDK sends it."""

    wire: str  # the name on the wire: "BizDate", "Tasks"
    place: str  # "query" or "body"
    type: str  # integer, number, boolean, string, or json (lists and objects, sent as JSON or flattened)
    required: bool
    model_type: str = ""  # the field's annotation in the typed request model, e.g. List[main_models.XTasks]


@dataclass(frozen=True)
class Operation:
    """What the SDK's `<action>_with_options` sends."""

    product: str
    action: str
    method: str
    parameters: dict[str, Parameter]
    # A JSON parameter's items' required fields, from its item model (Tasks: ClientUniqueCode, Owner, ...).
    items_required: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def parameter(self, wire: str) -> Parameter | None:
        """The parameter a wire key belongs to; `Tag.1.Key` (a flattened list) belongs to `Tag`."""
        found = self.parameters.get(wire)
        if found is None and "." in wire:
            found = self.parameters.get(wire.split(".", 1)[0])
        return found


@dataclass(frozen=True)
class _Field:
    name: str
    annotation: str
    required: bool


class _Package:
    """One installed SDK package: its client's source and its models, parsed on first use."""

    def __init__(self, product: str, name: str) -> None:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ContractUnavailable(f"the {product} SDK ({name}) is not installed")
        self.product = product
        self.root = Path(next(iter(spec.submodule_search_locations)))
        self.client = (self.root / "client.py").read_text(encoding="utf-8")
        self._modules: dict[str, str] | None = None

    def method_source(self, action: str) -> str:
        """The source of `<action>_with_options` (the synchronous one, which the generator writes first)."""
        at = self.client.find(f"action = '{action}'")
        if at < 0:
            raise ContractUnavailable(f"the {self.product} SDK has no action {action}")
        start = self.client.rfind("\n    def ", 0, at)
        end = self.client.find("\n    async def ", at)
        return textwrap.dedent(self.client[start + 1:end if end > 0 else len(self.client)])

    def model_fields(self, class_name: str) -> list[_Field]:
        source = self.model_source(class_name)
        return _fields(source, class_name)

    def wire_names(self, class_name: str) -> dict[str, str]:
        return _wire_names(self.model_source(class_name), class_name)

    def model_source(self, class_name: str) -> str:
        if self._modules is None:
            text = (self.root / "models" / "__init__.py").read_text(encoding="utf-8")
            self._modules = {cls: module for module, cls in re.findall(r"^from \.(\w+) import (\w+)$", text, re.M)}
        module = self._modules.get(class_name)
        if module is None:
            raise ContractUnavailable(f"the {self.product} SDK has no model {class_name}")
        return _read(self.root / "models" / f"{module}.py")


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _class(source: str, class_name: str) -> ast.ClassDef:
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return node
    raise ContractUnavailable(f"no class {class_name}")


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ContractUnavailable(f"{cls.name} has no {name}")


def _fields(source: str, class_name: str) -> list[_Field]:
    """The model's fields in order, with their annotations and whether the comment above says required."""
    init = _method(_class(source, class_name), "__init__")
    annotations = {arg.arg: ast.unparse(arg.annotation) for arg in init.args.args if arg.annotation is not None}
    lines = source.splitlines()
    # A field's comment is the text between the statement before it (or the signature) and its assignment.
    signature: list[ast.arg | ast.expr] = [*init.args.args, *init.args.defaults]
    previous_end = max((n.end_lineno or n.lineno for n in signature), default=init.lineno)
    fields = []
    for statement in init.body:
        if isinstance(statement, ast.Assign) and isinstance(target := statement.targets[0], ast.Attribute):
            comment = "\n".join(lines[previous_end:statement.lineno - 1])
            fields.append(_Field(target.attr, annotations.get(target.attr, ""), REQUIRED_MARK in comment))
        previous_end = statement.end_lineno or statement.lineno
    return fields


def _self_attributes(node: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"}


def _result_keys(node: ast.AST) -> set[str]:
    return {n.slice.value for n in ast.walk(node)
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == "result"
            and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str)}


def _wire_names(source: str, class_name: str) -> dict[str, str]:
    """Field name to wire name, from `to_map`: each statement there writes one `result['Wire']` from `self.field`."""
    names = {}
    for statement in _method(_class(source, class_name), "to_map").body:
        keys, attributes = _result_keys(statement), _self_attributes(statement) - {"to_map"}
        if len(keys) == 1 and len(attributes) == 1:
            names[attributes.pop()] = keys.pop()
    return names


def _kind(annotation: str) -> str:
    return SCALARS.get(annotation, "json")


def _read_operation(package: _Package, action: str) -> Operation:
    function = ast.parse(package.method_source(action)).body[0]
    assert isinstance(function, ast.FunctionDef)
    method = next((k.value.value for n in ast.walk(function) if isinstance(n, ast.Call)
                   for k in n.keywords if k.arg == "method" and isinstance(k.value, ast.Constant)), None)
    if not isinstance(method, str):
        raise ContractUnavailable(f"{action}: the SDK's client sets no method")
    typed = next((ast.unparse(a.annotation).rsplit(".", 1)[-1] for a in function.args.args
                  if a.arg in ("request", "tmp_req") and a.annotation is not None), None)
    if typed is None:  # an action without parameters, such as STS GetCallerIdentity
        return Operation(package.product, action, method, {})
    # A request with list or object fields is converted to its Shrink twin, whose fields the client then sends.
    shrink = next((n.value.func.attr for n in ast.walk(function) if isinstance(n, ast.Assign)
                   and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Attribute)
                   and n.value.func.attr.endswith("ShrinkRequest")), None)
    sent = shrink or typed
    fields = {f.name: f for f in package.model_fields(sent)}
    typed_fields = {f.name: f for f in package.model_fields(typed)} if shrink else fields
    places: dict[str, str] = {}  # field name to query or body
    for node in ast.walk(function):
        # query['Wire'] = request.field  /  body['Wire'] = request.field (body_flat is the body, flattened)
        if isinstance(node, ast.Assign) and isinstance(target := node.targets[0], ast.Subscript) \
                and isinstance(target.value, ast.Name) and isinstance(node.value, ast.Attribute):
            place = "query" if "query" in target.value.id else "body" if "body" in target.value.id else None
            if place is not None:
                places[node.value.attr] = place
        # query = Utils.query(request.to_map()): every field in the query
        elif isinstance(node, ast.Assign) and isinstance(target := node.targets[0], ast.Name) \
                and any(isinstance(n, ast.Attribute) and n.attr == "to_map" for n in ast.walk(node.value)):
            for name in fields:
                places.setdefault(name, "query" if "query" in target.id else "body")
    wire = package.wire_names(sent)
    parameters = {}
    for name, place in places.items():
        spec = fields.get(name)
        if spec is None or name not in wire:
            continue
        base = name.removesuffix("_shrink")
        model_type = typed_fields[base].annotation if base in typed_fields else spec.annotation
        parameters[wire[name]] = Parameter(wire[name], place, _kind(spec.annotation), spec.required, model_type)
    items_required = {}
    for parameter in parameters.values():
        item = re.fullmatch(r"(?:List\[)?main_models\.(\w+)\]?", parameter.model_type)
        if parameter.type == "string" and item:  # a shrink field: the items travel as JSON
            names, fields_of_item = package.wire_names(item.group(1)), package.model_fields(item.group(1))
            required = tuple(names[f.name] for f in fields_of_item if f.required and f.name in names)
            if required:
                items_required[parameter.wire] = required
    return Operation(package.product, action, method, parameters, items_required)


@dataclass(frozen=True)
class Finding:
    """One way a request departs from its contract: refused as the gateway does, or only recorded."""

    kind: str  # refused: missing, not-integer; recorded: method, place, unknown
    parameter: str | None
    detail: str

    @property
    def refused(self) -> bool:
        return self.kind in REFUSED


REFUSED = frozenset({"missing", "not-integer"})
_INTEGER = re.compile(r"-?[0-9]+")


def check(operation: Operation, method: str, query: dict[str, str], form: dict[str, str]) -> list[Finding]:
    """Every finding about one request, those the gateway refuses first (missing before malformed)."""
    findings: list[Finding] = []
    if method.upper() != operation.method:
        findings.append(Finding("method", None, f"{method.upper()} where the SDK sends {operation.method}"))
    sent = {**{k: ("query", v) for k, v in query.items()}, **{k: ("body", v) for k, v in form.items()}}
    for wire, (place, value) in sent.items():
        parameter = operation.parameter(wire)
        if parameter is None:
            findings.append(Finding("unknown", wire, f"{wire} is not a parameter of {operation.action}"))
            continue
        if place != parameter.place:
            findings.append(Finding("place", parameter.wire, f"{parameter.wire} sent in the {place} where the SDK "
                                    f"sends it in the {parameter.place}"))
        if parameter.type == "integer" and not _INTEGER.fullmatch(value):
            findings.append(Finding("not-integer", parameter.wire, f"{value[:40]!r} is not an integer"))
    for parameter in operation.parameters.values():
        if parameter.required and not (sent.get(parameter.wire) or ("", ""))[1]:
            findings.append(Finding("missing", parameter.wire, f"{parameter.wire} is required"))
    for wire, required in operation.items_required.items():
        findings += _nested_missing(wire, (sent.get(wire) or ("", ""))[1], required)
    return sorted(findings, key=lambda f: (not f.refused, f.kind != "missing"))


def _nested_missing(wire: str, value: str, required: tuple[str, ...]) -> list[Finding]:
    """Required fields absent from the items of a JSON parameter (an unreadable value is the handler's to refuse)."""
    import json

    try:
        items = json.loads(value) if value else []
    except ValueError:
        return []
    items = items if isinstance(items, list) else [items]
    return [Finding("missing", f"{wire}.{number}.{name}", f"{wire}[{number - 1}] has no {name}")
            for number, item in enumerate(items, 1) if isinstance(item, dict)
            for name in required if item.get(name) in (None, "")]


class Contract:
    """The simulated actions' contracts, each read from its SDK on first use and kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packages: dict[str, _Package] = {}
        self._operations: dict[tuple[str, str], Operation | None] = {}

    def operation(self, product: str, action: str) -> Operation | None:
        """The action's contract, or None when its SDK is not installed (the request is then not checked)."""
        key = (product, action)
        with self._lock:
            if key not in self._operations:
                try:
                    self._operations[key] = _read_operation(self._package(product), action)
                except ContractUnavailable:
                    self._operations[key] = None
            return self._operations[key]

    def _package(self, product: str) -> _Package:
        package = self._packages.get(product)
        if package is None:
            name = PACKAGES.get(product)
            if name is None:
                raise ContractUnavailable(f"no SDK is known for {product}")
            package = self._packages[product] = _Package(product, name)
        return package


_SHARED = Contract()


def shared() -> Contract:
    """One contract for the whole process: every simulator reads the same installed SDKs."""
    return _SHARED


__all__ = ["PACKAGES", "Contract", "ContractUnavailable", "Operation", "Parameter", "shared"]
