#!/usr/bin/env python3
"""Build tests/data/kubevirt/schema.json: the part of KubeVirt's API schema that
`passthru config --guest kubevirt` writes into, as JSON Schema (draft 7).

Source: the npm package @kubevirt-ui/kubevirt-api, whose kubevirt/models/*.ts are
generated (openapi-generator, typescript-fetch) from KubeVirt's OpenAPI definitions
(api/openapi-spec/swagger.json of kubevirt/kubevirt). Each model is an interface whose
fields carry a JSDoc `@type {...}` line with the OpenAPI type, and whose required
fields have no `?`. This script reads those declarations only (no code is run).

Usage (the project does not fetch it at test time; the output is committed):
    npm pack @kubevirt-ui/kubevirt-api@1.4.0 && tar xzf kubevirt-ui-kubevirt-api-1.4.0.tgz
    python3 scripts/kubevirt-schema.py package > tests/data/kubevirt/schema.json

Every model of ROOTS and the models they reach through MODELS is spelled out with
"additionalProperties": false (the API server's strict field validation, kubectl's
default, rejects unknown fields); any other model a field names is only required to
be an object.
"""

import json
import re
import sys
from pathlib import Path

# The documents passthru writes, and the models on the way to the fields it sets.
ROOTS = {"kubevirt": "V1KubeVirt", "virtualmachine": "V1VirtualMachine"}
MODELS = [
    "V1KubeVirt", "V1KubeVirtSpec", "V1KubeVirtConfiguration", "V1PermittedHostDevices",
    "V1PciHostDevice", "V1VirtualMachine", "V1VirtualMachineSpec",
    "V1VirtualMachineInstanceTemplateSpec", "V1VirtualMachineInstanceSpec",
    "V1DomainSpec", "V1Devices", "V1GPU", "V1HostDevice",
    "K8sIoApimachineryPkgApisMetaV1ObjectMeta",
]

FIELD = re.compile(
    r"@type \{(?P<type>[^\n]*)\}\s*\n(?:\s*\*[^\n]*\n)*?\s*\*/\s*\n\s*(?P<name>\w+)(?P<opt>\?)?:",
)

# `name: !exists(json, 'key') ? ...`, `name: json['key']` or `name: XFromJSON(json['key'])`
# in a FromJSON function.
JSON_KEY = re.compile(r"^\s+(\w+): (?:!exists\(json, '([^']+)'\)|[^\n]*?json\['([^']+)'\])", re.M)


def conv(t: str) -> dict:
    t = t.strip()
    if t == "string":
        return {"type": "string"}
    if t == "boolean":
        return {"type": "boolean"}
    if t == "number":
        return {"type": "number"}
    if t in ("any", "object"):
        return {}
    m = re.fullmatch(r"Array<(.+)>", t)
    if m:
        return {"type": "array", "items": conv(m.group(1))}
    m = re.fullmatch(r"\{ \[key: string\]: (.+?); \}", t)
    if m:
        return {"type": "object", "additionalProperties": conv(m.group(1))}
    if t in MODELS:
        return {"$ref": f"#/definitions/{t}"}
    if re.fullmatch(r"[A-Z]\w+", t):
        return {"type": "object"}
    raise SystemExit(f"unknown type {t!r}")


def model(pkg: Path, name: str) -> dict:
    src = (pkg / "kubevirt" / "models" / f"{name}.ts").read_text()
    body = src[src.index(f"export interface {name} {{"):]
    body = body[: body.index("\n}\n")]
    # The generator renames some fields in TypeScript (`configuration` becomes
    # `_configuration`); its FromJSON function maps each back to the JSON key.
    from_json = src[src.index(f"function {name}FromJSONTyped"):]
    keys = {m[0]: m[1] or m[2] for m in JSON_KEY.findall(from_json)}
    props, required = {}, []
    for m in FIELD.finditer(body):
        key = keys.get(m.group("name"))
        if key is None:
            raise SystemExit(f"{name}.{m.group('name')}: no JSON key in FromJSON")
        props[key] = conv(m.group("type"))
        if not m.group("opt"):
            required.append(key)
    if not props:
        raise SystemExit(f"{name}: no fields found")
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def main() -> None:
    pkg = Path(sys.argv[1])
    meta = json.loads((pkg / "package.json").read_text())
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"From {meta['name']} {meta['version']} kubevirt/models by scripts/kubevirt-schema.py",
        "definitions": {n: model(pkg, n) for n in MODELS},
        "roots": {k: {"$ref": f"#/definitions/{v}"} for k, v in ROOTS.items()},
    }
    json.dump(schema, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


main()
