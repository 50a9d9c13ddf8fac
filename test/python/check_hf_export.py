"""Checks checkpoints written by exportHF against PyTorch, in float64.

Usage: python test/python/check_hf_export.py <dir> [--tol 1e-5] [--reference test/fixtures/models]

<dir> holds what test/python/export_fixtures.ts writes: cases.json and, per case, config.json,
model.safetensors and expected.json (our float32 logits for fixed token ids).

- Llama (GQA/MHA/MQA) and DeepSeek-V3 (MLA) checkpoints are loaded by
  transformers.AutoModelForCausalLM.from_pretrained(dir, dtype=float64), which must report no missing,
  unexpected or mis-shaped tensors; its logits are compared with ours.
- GTA (GTAForCausalLM, which transformers does not ship) is run by gta_logits below, a float64 numpy
  implementation written from the GTA equations (docs ATTENTION_SPEC 4.3, G1-G9).
- With --reference (a folder of models.json, e.g. test/fixtures/models), the same two paths are first
  run on the reference models and compared with their stored float64 logits (the GTA one comes from
  the authors' code), which checks the numpy GTA and the loading path themselves.

Errors are norm-relative: ||ours - torch|| / ||torch||. Prints one line per case, then
'N passed, N failed' per mechanism and in total; exits 1 if anything failed.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import OrderedDict

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file


def rel_error(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        raise ValueError(f"logits shape {list(ours.shape)} differs from {list(ref.shape)}")
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


# ---------------------------------------------------------------------------------------------
# GTA in float64 numpy, from the equations (no code from the authors' repository).


def rms_norm(x, gain, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * gain


def rope(x, theta):
    """Rotate-half RoPE on [B, T, heads, d] at positions 0..T-1."""
    t, d = x.shape[1], x.shape[-1]
    inv_freq = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # [d/2]
    angles = np.arange(t, dtype=np.float64)[:, None] * inv_freq[None, :]  # [T, d/2]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[None, :, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[None, :, None, :]
    half = d // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def linear(x, w, b=None):
    """torch nn.Linear: y = x W^T + b, W stored [out, in]."""
    y = x @ w.T
    return y if b is None else y + b


def softmax(s):
    s = s - np.max(s, axis=-1, keepdims=True)
    e = np.exp(s)
    return e / np.sum(e, axis=-1, keepdims=True)


def gta_attention(x, w, p, cfg):
    """G1-G9: shared maps over a latent value, per-group decoder R + delta, sigmoid gate, output projection."""
    b, t, _ = x.shape
    n_q, n_k, n_c = cfg["num_query_heads"], cfg["num_key_heads"], cfg["num_value_heads"]
    d_h, d_l = cfg["head_dim"], cfg["value_dim"]
    width = cfg["num_attention_heads"] * d_h
    r = width // (n_q * d_l)
    assert r * n_q * d_l == width, "expand rate must be an integer"
    theta = cfg.get("rope_theta", 10000.0)
    q = rope(linear(x, w[p + "q_proj.weight"], w[p + "q_proj.bias"]).reshape(b, t, n_q, d_h), theta)
    k = rope(linear(x, w[p + "k_proj.weight"], w[p + "k_proj.bias"]).reshape(b, t, n_k, d_h), theta)
    c = linear(x, w[p + "v_proj.weight"], w[p + "v_proj.bias"]).reshape(b, t, n_c, d_l)
    delta = w[p + "v_b_proj.weight"].reshape(n_q, d_l, r * d_l)  # the raw buffer, read row-major
    causal = np.triu(np.full((t, t), -np.inf), k=1)
    groups = []
    for g in range(n_q):
        kg = k[:, :, (g * n_k) // n_q, :]  # [B, T, d_h]
        cg = c[:, :, (g * n_c) // n_q, :]  # [B, T, d_l]
        scores = np.einsum("btd,bsd->bts", q[:, :, g, :], kg) / np.sqrt(d_h) + causal
        o = softmax(scores) @ cg  # [B, T, d_l]
        groups.append(np.concatenate([o] * r, axis=-1) + o @ delta[g])  # [B, T, r*d_l]
    u = np.concatenate(groups, axis=-1)  # [B, T, width], group-major
    gate = 1.0 / (1.0 + np.exp(-linear(x, w[p + "g_proj.weight"], w[p + "g_proj.bias"])))
    return linear(gate * u, w[p + "o_proj.weight"])


def swiglu(x, w, p):
    gate = linear(x, w[p + "gate_proj.weight"])
    return linear(gate / (1.0 + np.exp(-gate)) * linear(x, w[p + "up_proj.weight"]), w[p + "down_proj.weight"])


def gta_logits(cfg, w, ids):
    """Logits [B, T, V] of a GTAForCausalLM checkpoint (pre-norm blocks, SwiGLU, final RMSNorm)."""
    eps = cfg.get("rms_norm_eps", 1e-6)
    h = w["model.embed_tokens.weight"][np.asarray(ids)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = h + gta_attention(rms_norm(h, w[p + "input_layernorm.weight"], eps), w, p + "self_attn.", cfg)
        h = h + swiglu(rms_norm(h, w[p + "post_attention_layernorm.weight"], eps), w, p + "mlp.")
    h = rms_norm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return h @ head.T


def load_f64(path):
    return {k: v.astype(np.float64) for k, v in load_file(path).items()}


# ---------------------------------------------------------------------------------------------


def transformers_logits(folder, ids):
    """Loads the checkpoint with AutoModelForCausalLM in float64 and returns (logits, class name)."""
    dtype_arg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        folder, output_loading_info=True, attn_implementation="eager", **{dtype_arg: torch.float64})
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise ValueError(f"from_pretrained reported {problems}")
    if model.config.tie_word_embeddings and model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise ValueError("tie_word_embeddings is set but lm_head is not the embedding table")
    if next(model.parameters()).dtype != torch.float64:
        raise ValueError(f"model loaded as {next(model.parameters()).dtype}, not float64")
    model.eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), use_cache=False).logits
    return out.numpy(), type(model).__name__


def reference_logits(folder, cfg, ids):
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch == "GTAForCausalLM":
        return gta_logits(cfg, load_f64(os.path.join(folder, "model.safetensors")), ids), "GTA numpy float64"
    if arch in ("LlamaForCausalLM", "DeepseekV3ForCausalLM"):
        logits, name = transformers_logits(folder, ids)
        return logits, f"transformers {name}"
    raise ValueError(f"unexpected architectures {cfg.get('architectures')}")


# The reference logits agree with transformers' own float64 Llama to about 1e-7 (they carry float32
# rounding), so the self-checks allow 1e-6: any mistake in the equations gives errors far above that.
REFERENCE_TOL = 1e-6
# What the reference cases' configs lack for transformers (the same keys exportHF writes).
REFERENCE_ARCH = {
    "gta": {"architectures": ["GTAForCausalLM"]},
    "gqa": {"architectures": ["LlamaForCausalLM"], "model_type": "llama"},
    "mla": {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "n_routed_experts": 0,
            "n_shared_experts": 0, "num_nextn_predict_layers": 0},
}


def reference_check(reference_dir, case, scratch):
    """One reference model (from models.json) through the same path as an export: GTA by the numpy
    implementation, GQA/MLA by transformers. Returns (description, error against its stored logits)."""
    expected = np.asarray(case["logits"]["data"]).reshape(case["logits"]["shape"])
    folder = os.path.join(scratch, case["name"])
    os.makedirs(folder, exist_ok=True)
    cfg = {**case["config"], **REFERENCE_ARCH[case["mechanism"]]}
    if case["mechanism"] == "mla":
        cfg["first_k_dense_replace"] = cfg["num_hidden_layers"]
        cfg["num_key_value_heads"] = cfg["num_attention_heads"]  # DeepSeek-V3's default is 128
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    shutil.copyfile(os.path.join(reference_dir, case["weights_file"]), os.path.join(folder, "model.safetensors"))
    logits, how = reference_logits(folder, cfg, case["input_ids"])
    return f"{case['name']} ({how})", rel_error(logits, expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--reference", default=None, help="folder of models.json (reference models and their logits)")
    args = parser.parse_args()
    torch.manual_seed(0)
    transformers.utils.logging.disable_progress_bar()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    counts = OrderedDict()
    failures = []

    def record(group, ok, line):
        passed, failed = counts.get(group, (0, 0))
        counts[group] = (passed + ok, failed + (not ok))
        print(line)
        if not ok:
            failures.append(line)

    if args.reference:
        scratch = tempfile.mkdtemp(prefix="hf-export-reference-")
        for case in json.load(open(os.path.join(args.reference, "models.json")))["cases"]:
            try:
                name, err = reference_check(args.reference, case, scratch)
                ok = bool(err <= REFERENCE_TOL)
                record("reference", ok, f"reference {name} vs its stored float64 logits: error {err:.2e} "
                       f"(limit {REFERENCE_TOL:g}) {'ok' if ok else 'FAILED'}")
            except Exception as e:  # noqa: BLE001 - reported as a failed check
                record("reference", False, f"reference {case['name']}: FAILED ({type(e).__name__}: {e})")
        shutil.rmtree(scratch, ignore_errors=True)

    cases = json.load(open(os.path.join(args.dir, "cases.json")))
    for case in cases["cases"]:
        folder = os.path.join(args.dir, case["name"])
        started = time.time()
        try:
            cfg = json.load(open(os.path.join(folder, "config.json")))
            expected = json.load(open(os.path.join(folder, "expected.json")))
            ours = np.asarray(expected["logits"]["data"], dtype=np.float64).reshape(expected["logits"]["shape"])
            ref, how = reference_logits(folder, cfg, expected["input_ids"])
            err = rel_error(ours, ref)
            ok = bool(err <= args.tol)
            record(case["mechanism"], ok, f"{case['name']} ({how}): logits error {err:.2e} (limit {args.tol:g}) "
                   f"{'ok' if ok else 'FAILED'} [{time.time() - started:.1f}s]")
        except Exception as e:  # noqa: BLE001 - reported as a failed case
            record(case["mechanism"], False, f"{case['name']}: FAILED ({type(e).__name__}: {e})")

    print()
    for group, (passed, failed) in counts.items():
        print(f"{group}: {passed} passed, {failed} failed")
    total_passed = sum(p for p, _ in counts.values())
    total_failed = sum(f for _, f in counts.values())
    if failures:
        print("\nfailures:")
        for line in failures:
            print(f"  {line}")
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
