#!/usr/bin/python3
"""Dump the operator schemas that codegen/generate-ops.ts reads:

- codegen/schemas/onnx.json: the default-domain (ai.onnx) schemas, every version up to MAX_OPSET;
- codegen/schemas/contrib.json: ONNX Runtime's contrib schemas (com.microsoft, and the ORT-only ops
  it registers in the default domain, e.g. SimplifiedLayerNormalization).

Run with a python that has onnx 1.23.1 and onnxruntime 1.30.0 (they install offline from the local
wheel store):

    python3 -m venv /tmp/venv-gpu && /tmp/venv-gpu/bin/pip install onnx==1.23.1 onnxruntime==1.30.0
    /tmp/venv-gpu/bin/python codegen/dump-schemas.py

The output is deterministic (ops sorted by name then since_version, keys sorted, fixed indent) so
that it can be committed and diffed. CI does not re-run this.
"""

import json
import os
import re
import struct
import sys

import onnx
from onnx import defs, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "schemas", "onnx.json")
CONTRIB_OUT = os.path.join(HERE, "schemas", "contrib.json")
# The newest opset vlmc targets: the newest that onnxruntime 1.30 implements kernels for broadly.
MAX_OPSET = 24
# ORT registers these contrib ops in the default domain (the rest of its default-domain extras are
# pre-1.0 experimental ops that onnx dropped).
ORT_DEFAULT_DOMAIN_OPS = {"SimplifiedLayerNormalization"}
DOC_MAX_CHARS = 600

# onnx's and onnxruntime's pybind enums are different classes with the same member names.
OPTION_NAMES = {"Single": "single", "Optional": "optional", "Variadic": "variadic"}


def first_paragraph(doc):
    """The doc string's first paragraph, de-indented and joined into one line, capped in length."""
    lines = (doc or "").strip("\n").split("\n")
    para = []
    for line in lines:
        s = line.strip()
        if not s:
            if para:
                break
            continue
        if s.startswith("```"):  # a code block before any blank line: stop at it
            break
        para.append(s)
    text = " ".join(para)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > DOC_MAX_CHARS:
        cut = text[:DOC_MAX_CHARS]
        dot = cut.rfind(". ")
        cut = cut[: dot + 1] if dot > DOC_MAX_CHARS // 2 else cut[: cut.rfind(" ")] + " ..."
        text = cut
    return text


def description(text):
    return re.sub(r"\s+", " ", (text or "")).strip()


def f32(x):
    """A float attribute value as the shortest decimal that round-trips through float32."""
    x32 = struct.unpack("f", struct.pack("f", x))[0]
    for digits in range(1, 18):
        s = "%.*g" % (digits, x32)
        if struct.unpack("f", struct.pack("f", float(s)))[0] == x32:
            return float(s)
    return x32


def default_proto(attr):
    """The default AttributeProto: onnx exposes it parsed, onnxruntime's pybind as bytes."""
    if hasattr(attr, "default_value"):
        return attr.default_value
    raw = attr._default_value
    if not raw:
        return None
    proto = onnx.AttributeProto()
    proto.ParseFromString(raw)
    return proto


def decode_default(attr):
    """(has_default, value) for a schema attribute's default AttributeProto."""
    proto = default_proto(attr)
    if proto is None or proto.type == onnx.AttributeProto.UNDEFINED:
        return False, None
    value = helper.get_attribute_value(proto)
    t = proto.type
    A = onnx.AttributeProto
    if t == A.FLOAT:
        return True, f32(value)
    if t == A.FLOATS:
        return True, [f32(v) for v in value]
    if t == A.INT:
        return True, int(value)
    if t == A.INTS:
        return True, [int(v) for v in value]
    if t == A.STRING:
        return True, value.decode("utf-8")
    if t == A.STRINGS:
        return True, [v.decode("utf-8") for v in value]
    if t == A.TENSOR:
        # Not emitted as a literal: describe it instead.
        return True, {"tensor": {"dataType": int(value.data_type), "dims": [int(d) for d in value.dims]}}
    return True, {"unsupported": A.AttributeType.Name(t)}


def formal(p):
    return {
        "name": p.name,
        "option": OPTION_NAMES[p.option.name],
        "typeStr": getattr(p, "type_str", None) or p.typeStr,
        "description": description(p.description),
    }


def dump_schema(s):
    attrs = []
    for name in sorted(s.attributes):
        a = s.attributes[name]
        has_default, default = decode_default(a)
        entry = {
            "name": a.name,
            "type": str(a.type).split(".")[-1],
            "required": bool(a.required),
            "description": description(a.description),
        }
        if has_default:
            entry["default"] = default
        attrs.append(entry)
    return {
        "name": s.name,
        "domain": s.domain,
        "sinceVersion": s.since_version,
        "deprecated": bool(s.deprecated),
        "doc": first_paragraph(s.doc),
        "minInput": s.min_input,
        "maxInput": s.max_input,
        "minOutput": s.min_output,
        "maxOutput": s.max_output,
        "inputs": [formal(p) for p in s.inputs],
        "outputs": [formal(p) for p in s.outputs],
        "attributes": attrs,
        "typeConstraints": {
            tc.type_param_str: sorted(tc.allowed_type_strs) for tc in s.type_constraints
        },
    }


def write(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    sys.stderr.write("wrote %s: %d schema versions, %d bytes\n" % (path, len(doc["ops"]), len(text.encode("utf-8"))))


def by_name(schemas):
    return sorted(schemas, key=lambda s: (s.domain, s.name, s.since_version))


def main():
    schemas = by_name(
        s for s in defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx") and s.since_version <= MAX_OPSET
    )
    write(OUT, {
        "source": "onnx.defs.get_all_schemas_with_history(), since_version <= %d" % MAX_OPSET,
        "onnxVersion": onnx.__version__,
        "domain": "",
        "maxSinceVersion": max(s.since_version for s in schemas),
        "ops": [dump_schema(s) for s in schemas],
    })

    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as ort

    contrib = by_name(
        s for s in ort.get_all_operator_schema()
        if s.domain == "com.microsoft" or (s.domain in ("", "ai.onnx") and s.name in ORT_DEFAULT_DOMAIN_OPS)
    )
    write(CONTRIB_OUT, {
        "source": "onnxruntime get_all_operator_schema(): com.microsoft and ORT-only default-domain ops",
        "onnxVersion": onnx.__version__,
        "onnxruntimeVersion": onnxruntime.__version__,
        "domain": "com.microsoft",
        "maxSinceVersion": max(s.since_version for s in contrib),
        "ops": [dump_schema(s) for s in contrib],
    })


if __name__ == "__main__":
    main()
