"""Cross-check vlmc artifacts against transformers' own LLM implementations.

Run where PyTorch, transformers, onnxruntime and safetensors are installed (the GPU machine):
    python3 test/device/check.py out/device
For each case from prepare.mts: transformers builds the LLM from llm_config.json, loads
llm.safetensors strictly, and computes logits in float64 (on CUDA when available); onnxruntime
runs the vlmc artifact on the same text-only inputs (CUDA execution provider when available, and
CPU). Prints max abs errors; exits 1 when any exceeds 1e-4.
"""
import glob
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
import transformers
from safetensors.numpy import load_file as load_np
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

TOL = 1e-4


def reference_logits(case, input_ids, device):
    cfg = json.load(open(os.path.join(case, "llm_config.json")))
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float64)
    state = {k: v.double() for k, v in load_file(os.path.join(case, "llm.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"{case}: state dict mismatch: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.to(device).eval()
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(input_ids).to(device)).logits.cpu().numpy()


def vlmc_logits(case, feeds, provider):
    sess = ort.InferenceSession(os.path.join(case, "artifact", "model.onnx"), providers=[provider])
    return sess.run(["logits"], feeds)[0]


def main(root):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    print(f"torch {torch.__version__} on {device}; transformers {transformers.__version__}; onnxruntime {ort.__version__} {providers}")
    worst = 0.0
    for case in sorted(glob.glob(os.path.join(root, "*/"))):
        feeds = {k: v for k, v in load_np(os.path.join(case, "inputs.safetensors")).items()}
        ref = reference_logits(case, feeds["input_ids"], device)
        for provider in providers:
            got = vlmc_logits(case, feeds, provider)
            err = float(np.abs(got.astype(np.float64) - ref).max())
            worst = max(worst, err)
            print(f"{os.path.basename(case.rstrip('/')):22s} {provider:22s} max|err| {err:.3e}  (logits std {ref.std():.3f})")
    print(f"worst {worst:.3e} (tolerance {TOL})")
    sys.exit(0 if worst <= TOL else 1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/device")
