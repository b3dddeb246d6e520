"""Test-only probes of the sweep kernel's helpers: `probe` evaluates one `@triton.jit` helper of
kernels/sweep_triton.py on N lanes of random case rows and inputs, `TORCH` the torch function it mirrors on
the same inputs (tests/test_kernels.py compares them). Import after TRITON_INTERPRET=1 is set."""

from __future__ import annotations

import math

import torch

import kernels.sweep_triton as st
from simulator import serving as sv
from simulator.acceptance import scaled_al
from simulator.batched import SCALAR_FIELDS, CaseBatch
from simulator.knobs import KNOB_NAMES
from simulator.lowering import OP_FIELDS, PASS_FIELDS
from simulator.moe import expected_experts_touched
from simulator.speculative import StepTables, decode_step_terms, prefill_time_s, runs_eager, sampling_time_s
from simulator.step_cost import busiest_rank_share, link_knobs, pass_cost

triton, tl = st.triton, st.tl
N = 128  # lanes: one random case row each
INPUTS = ("requests", "tokens", "context", "draft_tokens", "al", "layer_us", "eager", "max_batch", "route_prob",
          "rank_z")

# random ranges (log-uniform where lo > 0 and hi / lo > 100, else uniform; `int`: rounded) of every field
OP_RANGES = {"flops_per_token": (1e5, 1e10), "flops_per_token_ctx": (0.0, 1e4), "ctx_scale": (0.0, 1.0),
             "ctx_offset": (0.0, 1e3), "ctx_cap": (1e2, 1e6), "weight_bytes": (0.0, 2e9), "expert_bytes": (0.0, 1e8),
             "experts_local": (0.0, 256.0), "route_prob": (1e-3, 0.5), "busiest_rank_z": (0.0, 2.5),
             "bytes_per_token": (0.0, 1e5),
             "bytes_per_request_ctx": (0.0, 1e5), "bytes_per_request": (0.0, 1e6), "peak_flops": (1e13, 1e16),
             "dp_sharded": (0.0, 1.0, int), "imbalance_weight": (0.0, 1.0)}
PASS_RANGES = {"attention_dp": (1.0, 16.0, int), "comm_bytes_per_token": (0.0, 1e6), "collectives": (0.0, 200.0, int),
               "layer_passes": (1.0, 200.0, int), "link_bytes_s": (1e10, 2e12), "hbm_bytes_s": (1e12, 1e13),
               "logits_bytes_per_token": (0.0, 1e6), "logits_comm_bytes_per_token": (0.0, 1e6),
               "scale_out": (0.0, 1.0, int)}
KNOB_RANGES = {"hbm_bandwidth_fraction": (0.3, 1.0), "compute_fraction": (0.3, 1.0),
               "link_bandwidth_fraction": (0.3, 1.0), "layer_pass_latency_us": (0.0, 20.0),
               "collective_latency_us": (0.0, 30.0), "step_latency_us": (0.0, 500.0), "moe_imbalance": (1.0, 2.0),
               "draft_pass_latency_us": (0.0, 20.0), "eager_layer_pass_latency_us": (0.0, 100.0),
               "request_overhead_us": (0.0, 50.0), "scale_out_latency_us": (0.0, 30.0),
               "scale_out_bandwidth_fraction": (0.3, 1.0), "route_repeat_fraction": (0.0, 0.9),
               "expert_popularity_cv": (0.0, 2.0)}
SCALAR_RANGES = {"input_tokens": (64.0, 16384.0, int), "output_tokens": (64.0, 4096.0, int),
                 "prefill_chunk_tokens": (256.0, 16384.0, int), "chunked_prefill": (0.0, 1.0, int),
                 "gpus": (1.0, 72.0, int), "attention_dp": (1.0, 16.0, int), "max_draft_tokens": (0.0, 8.0, int),
                 "acceptance_scale": (0.5, 1.5), "acceptance_pinned": (0.0, 0.0), "max_step_tokens": (256.0, 32768.0, int, "inf"),
                 "graph_max_batch": (1.0, 512.0, int, "inf"), "graph_counts_tokens": (0.0, 1.0, int),
                 "speculation_overlapped": (0.0, 1.0, int),
                 "disaggregated": (0.0, 1.0, int), "decode_workers": (1.0, 8.0, int),
                 "prefill_workers": (1.0, 8.0, int), "prefill_attention_dp": (1.0, 16.0, int),
                 "kv_bytes": (1e5, 1e10), "kv_link_bytes_s": (1e9, 1e11)}
INPUT_RANGES = {"requests": (0.2, 2000.0), "tokens": (1.0, 5e4), "context": (0.0, 1e5), "draft_tokens": (0.0, 6.0, int),
                "al": (0.0, 1.0), "layer_us": (0.0, 20.0), "eager": (0.0, 1.0, int),
                "max_batch": (1.0, 2000.0, int, "inf"), "route_prob": (1e-3, 0.5),
                "rank_z": (0.0, 2.5)}


def draw(spec: tuple, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    lo, hi, *kind = spec
    u = torch.rand(shape, generator=g, dtype=torch.float64)
    x = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if lo > 0 and hi / lo > 100 else lo + u * (hi - lo)
    if int in kind:
        x = x.round()
    if "inf" in kind:  # a quarter of the lanes unlimited
        x = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.25, math.inf, x)
    return x


def random_batch(seed: int, n_ops: int = 5) -> tuple[CaseBatch, dict[str, torch.Tensor]]:
    """N random case rows (four tables each, knobs, scalars) and N random lanes of the probes' INPUTS."""
    g = torch.Generator().manual_seed(seed)

    def cols(ranges: dict[str, tuple], names: tuple[str, ...], shape: tuple[int, ...]) -> torch.Tensor:
        return torch.stack([draw(ranges[f], shape, g) for f in names], -1)

    ops = cols(OP_RANGES, OP_FIELDS, (N, 4, n_ops)).transpose(-1, -2)  # [N, 4, fields, n_ops]
    x = {name: draw(INPUT_RANGES[name], (N,), g) for name in INPUTS}
    x["al"] = 1.0 + x["al"] * x["draft_tokens"]  # in [1, k + 1]
    batch = CaseBatch(ops=ops.contiguous(), passes=cols(PASS_RANGES, PASS_FIELDS, (N, 4)),
                      knobs=cols(KNOB_RANGES, KNOB_NAMES, (N,)), scalars=cols(SCALAR_RANGES, SCALAR_FIELDS, (N,)),
                      al=torch.ones(N, 1, dtype=torch.float64), max_batch=x["max_batch"][:, None],
                      group=torch.zeros(N, dtype=torch.int64), groups=(("random",),), reasons=(("",),) * N)
    return batch, x


if triton is not None:

    @triton.jit
    def _probe_kernel(row_ptr, x_ptr, out_ptr, row_len, n_ops, off, OP: tl.constexpr, PASS: tl.constexpr,
                      KNOB: tl.constexpr, SCALAR: tl.constexpr, THROTTLE_STEPS: tl.constexpr,
                      MAX_BATCH: tl.constexpr, N: tl.constexpr,
                      WHICH: tl.constexpr):
        """out[j, lane] = output j of helper WHICH at lane's case row and inputs x[:, lane] (INPUTS order)."""
        i = tl.arange(0, N)
        r = row_ptr + i * row_len
        tables = st._step_tables(r, off.target_ops, off.target_pass, off.draft_ops, off.draft_pass, n_ops, PASS)
        prefill = st._step_tables(r, off.prefill_target_ops, off.prefill_target_pass, off.prefill_draft_ops,
                                  off.prefill_draft_pass, n_ops, PASS)
        t = tables.target
        kn = st._load_knobs(r + off.knob, KNOB)
        s = st._load_scalars(r + off.scalar, SCALAR)
        req, tok, ctx, k, al, layer_us, eager, max_batch, route, rank_z = [
            tl.load(x_ptr + j * N + i) for j in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)]
        lim = st.Limits(max_batch, s.max_step_tokens, s.graph_max_batch, s.graph_counts_tokens,
                        s.speculation_overlapped)
        if WHICH == "scaled_al":
            res = (st._scaled_al(al, s.acceptance_scale, k),)
        elif WHICH == "busiest_rank_share":
            res = (st._busiest_rank_share(req, t.attention_dp),)
        elif WHICH == "link_knobs":
            res = st._link_knobs(t, kn)
        elif WHICH == "expected_experts_touched":
            res = (st._expected_experts_touched(ctx, route, tok, rank_z, kn.expert_popularity_cv),)
        elif WHICH == "pass_cost":
            res = (st._pass_cost(t, kn, req, tok, ctx, layer_us, eager, k + 1.0, OP),)
        elif WHICH == "runs_eager":
            res = (st._runs_eager(req, k, t.attention_dp, s.graph_max_batch, s.graph_counts_tokens),)
        elif WHICH == "sampling_time_s":
            res = (st._sampling_time_s(t, kn, req, tok),)
        elif WHICH == "decode_step_terms":
            res = (st._decode_step_s(tables, kn, req, k, ctx, tok, s.graph_max_batch, s.graph_counts_tokens,
                                     s.speculation_overlapped, OP),)
        elif WHICH == "prefill_time_s":
            res = (st._prefill_time_s(tables, kn, tok, s.input_tokens, s.prefill_chunk_tokens, eager, OP),)
        elif WHICH == "running_batch":
            res = (st._running_batch(req, k, lim),)
        elif WHICH == "closed_loop_tokens":
            res = st._closed_loop_tokens(tables, kn, s.input_tokens, s.output_tokens, s.chunked_prefill,
                                         s.prefill_chunk_tokens, req, k, al, s.gpus, lim, OP)
        elif WHICH == "prefill_pool":
            res = st._prefill_pool(prefill, kn, s.input_tokens, s.prefill_chunk_tokens, s.prefill_attention_dp,
                                   s.prefill_workers, eager, OP)
        elif WHICH == "kv_transfer_s":
            res = (st._kv_transfer_s(kn, s.kv_bytes, s.kv_link_bytes_s),)
        else:
            tl.static_assert(WHICH == "disaggregated_loop_tokens")
            res = st._disaggregated_loop_tokens(tables, prefill, kn, s.input_tokens, s.output_tokens,
                                                s.prefill_chunk_tokens, s.prefill_attention_dp, s.prefill_workers,
                                                s.decode_workers, s.kv_bytes, s.kv_link_bytes_s, req, k, al, s.gpus,
                                                lim, OP, THROTTLE_STEPS, MAX_BATCH)
        for j in tl.static_range(len(res)):
            tl.store(out_ptr + j * N + i, res[j])


def probe(which: str, batch: CaseBatch, x: dict[str, torch.Tensor], n_out: int) -> tuple[torch.Tensor, ...]:
    """The kernel helper mirroring torch function `which` on every lane: its `n_out` outputs."""
    rows, off = st.pack(batch)
    xs = torch.stack([x[name] for name in INPUTS]).contiguous()
    out = torch.full((n_out, N), math.nan, dtype=torch.float64)
    layout = {name: st.LAYOUT[name] for name in ("OP", "PASS", "KNOB", "SCALAR")}
    _probe_kernel[(1,)](rows, xs, out, rows.shape[1], batch.n_ops, off, **layout,
                        THROTTLE_STEPS=sv.THROTTLE_BISECTION_STEPS, MAX_BATCH=sv.MAX_BISECTION_BATCH, N=N,
                        WHICH=which)
    return tuple(out)


def _metrics(m: object) -> tuple[torch.Tensor, ...]:
    return tuple(getattr(m, f) for f in st.Metrics._fields)


def torch_side(which: str, batch: CaseBatch, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The torch function `which` on the same lanes (what `probe` must reproduce)."""
    tables, pf = StepTables(batch.table(0), batch.table(1)), StepTables(batch.table(2), batch.table(3))
    t, kn, s = tables.target, batch.knob_tensors(), batch.scalar
    req, tok, ctx, k, al = x["requests"], x["tokens"], x["context"], x["draft_tokens"], x["al"]
    lim = sv.StepLimits(x["max_batch"], s("max_step_tokens"), s("graph_max_batch"), s("graph_counts_tokens"),
                        s("speculation_overlapped"))
    calls = {
        "scaled_al": lambda: (scaled_al(al, s("acceptance_scale"), k),),
        "busiest_rank_share": lambda: (busiest_rank_share(req, t.attention_dp),),
        "link_knobs": lambda: link_knobs(t, kn),
        "expected_experts_touched": lambda: (expected_experts_touched(ctx, x["route_prob"], tok, x["rank_z"],
                                                                      kn.expert_popularity_cv),),
        "pass_cost": lambda: (pass_cost(t, kn, req, tok, ctx, x["layer_us"], x["eager"], x["draft_tokens"] + 1.0).total_s,),
        "runs_eager": lambda: (runs_eager(req, k, t.attention_dp, s("graph_max_batch"), s("graph_counts_tokens")),),
        "sampling_time_s": lambda: (sampling_time_s(t, kn, req, tok),),
        "decode_step_terms": lambda: (decode_step_terms(tables, kn, req, k, ctx, tok, s("graph_max_batch"),
                                                        s("graph_counts_tokens"),
                                                        s("speculation_overlapped")).total_s,),
        "prefill_time_s": lambda: (prefill_time_s(tables, kn, tok, s("input_tokens"), s("prefill_chunk_tokens"),
                                                  x["eager"]),),
        "running_batch": lambda: (sv.running_batch(req, k, lim),),
        "closed_loop_tokens": lambda: _metrics(sv.closed_loop_tokens(
            tables, kn, s("input_tokens"), s("output_tokens"), s("chunked_prefill"), s("prefill_chunk_tokens"), req,
            k, al, s("gpus"), lim)),
        "prefill_pool": lambda: tuple(vars(sv.prefill_pool(pf, kn, s("input_tokens"), s("prefill_chunk_tokens"),
                                                        s("prefill_attention_dp"), s("prefill_workers"),
                                                        x["eager"])).values()),
        "kv_transfer_s": lambda: (sv.kv_transfer_s(kn, s("kv_bytes"), s("kv_link_bytes_s")),),
        "disaggregated_loop_tokens": lambda: _metrics(sv.disaggregated_loop_tokens(
            tables, pf, kn, s("input_tokens"), s("output_tokens"), s("prefill_chunk_tokens"),
            s("prefill_attention_dp"), s("prefill_workers"), s("decode_workers"), s("kv_bytes"), s("kv_link_bytes_s"),
            req, k, al, s("gpus"), lim)),
    }
    return tuple(torch.as_tensor(v, dtype=torch.float64).expand(N) for v in calls[which]())
