#!/usr/bin/python3
"""Dump the default-domain ONNX operator schemas (every version) to codegen/schemas/onnx.json.

Run with the system python that has the `onnx` package (Debian's python3-onnx):

    /usr/bin/python3 codegen/dump-schemas.py

The output is deterministic (ops sorted by name then since_version, keys sorted, fixed indent) so
that it can be committed and diffed. `codegen/generate-ops.ts` reads it; CI does not re-run this.
"""

import json
import os
import re
import struct
import sys

import onnx
from onnx import defs, helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "onnx.json")
DOC_MAX_CHARS = 600

OPTION_NAMES = {
    defs.OpSchema.FormalParameterOption.Single: "single",
    defs.OpSchema.FormalParameterOption.Optional: "optional",
    defs.OpSchema.FormalParameterOption.Variadic: "variadic",
}


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


def decode_default(attr):
    """(has_default, value) for a schema attribute's default AttributeProto."""
    proto = attr.default_value
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
        "option": OPTION_NAMES[p.option],
        "typeStr": p.typeStr,
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


def main():
    schemas = [s for s in defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")]
    schemas.sort(key=lambda s: (s.name, s.since_version))
    ops = [dump_schema(s) for s in schemas]
    doc = {
        "source": "onnx.defs.get_all_schemas_with_history()",
        "onnxVersion": onnx.__version__,
        "domain": "",
        "maxSinceVersion": max(s.since_version for s in schemas),
        "ops": ops,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    sys.stderr.write("wrote %s: %d schema versions, %d bytes\n" % (OUT, len(ops), len(text.encode("utf-8"))))


if __name__ == "__main__":
    main()
