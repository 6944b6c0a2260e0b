#!/usr/bin/env python3
"""Validates HealthCode event files against the JSON Schemas in schemas/, independently of the Swift core.

Usage: schema_validate.py [--schemas DIR] FILE...

Prints one JSON object per file, in order: {"file": ..., "valid": true|false, "errors": [{"path", "message"}]}.
Exits 0 when every file was examined (whatever their validity), 2 on a usage or setup problem.

Each file holds one event (JSON object). Parsing is as strict as RFC 8259 and the contract require: UTF-8
only, no byte order mark, no duplicate member names, no NaN/Infinity, no lone surrogates. Validation uses
jsonschema's Draft 2020-12 validator with format checking (rfc3339-validator must be installed, otherwise
"date-time" would silently pass) plus the contract's one extension keyword, "x-instantOrder", which states
orderings between two instants that JSON Schema cannot express (arrivedAt not before time, ...).

Used by the Swift conformance test (Tests/HealthCodeCoreTests/SchemaConformanceTests.swift); runs in the
project venv created by scripts/bootstrap.sh.
"""
import json
import pathlib
import re
import sys
from datetime import date

try:
    import jsonschema
    import rfc3339_validator  # noqa: F401  (enables the "date-time" format check in jsonschema)
    from referencing import Registry, Resource
except ImportError as error:
    print(f"schema_validate: missing Python package ({error.name}); run scripts/bootstrap.sh", file=sys.stderr)
    sys.exit(2)


class StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise StrictJSONError("duplicate member name")
        seen[key] = value
    return seen


def _reject_constant(name):
    raise StrictJSONError(f"{name} is not JSON")


def _check_strings(value):
    """Rejects lone surrogates, which Python's json accepts from \\u escapes but UTF-8 cannot carry."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)


def load_strict(raw: bytes):
    text = raw.decode("utf-8")  # strict: invalid UTF-8 raises
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    _check_strings(value)
    return value


_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)


def _instant(text):
    """Microseconds since the epoch of an instant already checked by the schema, or None."""
    if not isinstance(text, str):
        return None
    match = _INSTANT.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = int((match.group(7) or "").ljust(6, "0"))
    try:
        days = (date(year, month, day) - date(1970, 1, 1)).days
    except ValueError:
        return None
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    return seconds * 1_000_000 + fraction


def _pointer(document, pointer):
    node = document
    for part in pointer.lstrip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _instant_order(validator, orders, instance, schema):
    for order in orders:
        earlier = _instant(_pointer(instance, order["earlier"]))
        later = _instant(_pointer(instance, order["later"]))
        if earlier is None or later is None:
            continue  # absent or malformed: other keywords report that
        if later < earlier or (later == earlier and not order.get("allowEqual", False)):
            relation = "not before" if order.get("allowEqual", False) else "after"
            yield jsonschema.ValidationError(f"{order['later']} must be {relation} {order['earlier']}")


HealthCodeValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-instantOrder": _instant_order}
)
# Referenced schemas declare "$schema": Draft 2020-12, and jsonschema picks the validator class for a
# referenced resource by that URI; registering the extension under it keeps "x-instantOrder" in force there.
jsonschema.validators.validates("draft2020-12")(HealthCodeValidator)


def make_validator(schema_dir: pathlib.Path):
    resources = []
    for path in sorted(schema_dir.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry = Registry().with_resources(resources)
    root = json.loads((schema_dir / "event.schema.json").read_text(encoding="utf-8"))
    HealthCodeValidator.check_schema(root)
    return HealthCodeValidator(root, registry=registry, format_checker=jsonschema.FormatChecker())


def _path(error):
    parts = []
    for part in error.absolute_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def validate_file(validator, path: pathlib.Path):
    try:
        document = load_strict(path.read_bytes())
    except (UnicodeError, ValueError) as error:
        return {"file": str(path), "valid": False, "errors": [{"path": "", "message": f"not JSON: {error}"}]}
    errors = [
        {"path": _path(error), "message": error.message}
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]
    return {"file": str(path), "valid": not errors, "errors": errors}


def main(argv):
    args = list(argv)
    schema_dir = pathlib.Path(__file__).resolve().parent.parent / "schemas"
    if len(args) >= 2 and args[0] == "--schemas":
        schema_dir = pathlib.Path(args[1])
        args = args[2:]
    if not args:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    validator = make_validator(schema_dir)
    for name in args:
        print(json.dumps(validate_file(validator, pathlib.Path(name)), ensure_ascii=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
