"""Where a decode step's time goes: the effective step (decode step + prefill stall) by named term.

The terms sum exactly to `ServingMetrics.step_s + stall_s`. Each operator of the verify (or plain decode)
pass costs max(compute, memory); a compute-bound operator's time counts as `compute`, a memory-bound one's
is split by what its bytes are (weights, KV cache / recurrent state, activations).
"""

from __future__ import annotations

import torch

from simulator.serving import ServingMetrics

TERMS = ("weights", "kv_cache", "activations", "compute", "collectives", "latency_floors", "draft_passes",
         "sampling", "speculative_overheads", "prefill_stall")


def step_breakdown(m: ServingMetrics) -> dict[str, torch.Tensor]:
    """Seconds per effective step by term (`TERMS`), each broadcast to the points' shape.

    latency_floors: the verify pass's per-layer floors, its eager-launch excess above the CUDA-graph limit,
    and the per-step floor; draft_passes: the draft extend pass and the k - 1 draft decode passes (their own
    floors, collectives and roofline); sampling: vocabulary-wide logits of every sampled position;
    speculative_overheads: per-request bookkeeping while speculating.
    """
    t, v = m.terms, m.terms.verify
    memory = v.weight_s + v.kv_s + v.activation_s
    mem_bound = (v.compute_s < memory).to(torch.float64)
    frac = torch.where(memory > 0, v.operator_s / torch.where(memory > 0, memory, 1.0), 0.0) * mem_bound
    parts = {
        "weights": (v.weight_s * frac).sum(-1),
        "kv_cache": (v.kv_s * frac).sum(-1),
        "activations": (v.activation_s * frac).sum(-1),
        "compute": (v.operator_s * (1.0 - mem_bound)).sum(-1),
        "collectives": v.comm_s,
        "latency_floors": v.latency_s + v.eager_s + t.step_latency_s,
        "draft_passes": t.draft_extend_s + t.draft_decode_s,
        "sampling": t.sampling_s,
        "speculative_overheads": t.bookkeeping_s,
        "prefill_stall": m.stall_s,
    }
    shape = torch.broadcast_shapes(*(p.shape for p in parts.values()))
    return {name: parts[name].expand(shape) for name in TERMS}
