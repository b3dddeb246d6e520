"""Sweep engine: lowering == the torch model, Triton kernel == torch reference, binned frontier, chunking."""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are defined: run them in the interpreter on the CPU

import dataclasses  # noqa: E402
import importlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

if "kernels.sweep_triton" in sys.modules:  # an earlier test module imported it: redefine the kernels
    importlib.reload(sys.modules["kernels.sweep_triton"])

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kernels.sweep_triton as st  # noqa: E402
from kernels import Case, CaseBatch, evaluate_grid_torch, lower_cases, sweep  # noqa: E402
from simulator.acceptance import al_table  # noqa: E402
from simulator.batched import OP_PAD, SCALAR_FIELDS  # noqa: E402
from simulator.catalog import list_keys, load_hardware, load_model, load_workload  # noqa: E402
from simulator.frontier import TIE_RTOL  # noqa: E402
from simulator.knobs import KNOB_NAMES  # noqa: E402
from simulator.lowering import OP_FIELDS, PASS_FIELDS  # noqa: E402
from simulator.scenario import Scenario  # noqa: E402
from simulator.serving import StepLimits, closed_loop, closed_loop_tokens, disaggregated_loop_tokens  # noqa: E402
from simulator.specs import EngineEfficiency, EngineLimits, ServingSpec  # noqa: E402
from simulator.specs.topology import DisaggregatedSpec, WorkerSpec  # noqa: E402
from simulator.topology import kv_transfer, worker_memory, worker_model  # noqa: E402

needs_triton = pytest.mark.skipif(st.triton is None, reason="triton is not importable: only the torch backend runs")
C = torch.tensor([1.0, 3.0, 64.0, 700.0, 1e5])  # 1e5 exceeds every case's memory: queued, not infeasible
K = torch.tensor([0.0, 1.0, 2.0, 5.0, 9.0])  # 9 is beyond every AL table (K <= 8)
A = torch.tensor([0.6, 1.0, 1.3])
# kernel (interpreter) == torch reference: the same float64 arithmetic in the same order but for the sum over
# operators and E (1 - (1 - p)^T) as exp / log; measured <= 1.1e-15 relative on every grid here
KERNEL_RTOL = 1e-13


def scenario(model: str, hw: str, precision: str = "fp8", workload: str = "1k1k", **serving: object) -> Scenario:
    m, acc = load_model(model)
    return Scenario(model=m, hardware=load_hardware(hw), precision=precision, workload=load_workload(workload),
                    acceptance=acc, serving=ServingSpec(**serving))


@pytest.fixture(scope="module")
def small() -> CaseBatch:
    """Draft / no-draft / no-draft model, separate and chunked prefill, DP-attention, linear attention."""
    glm, llama = scenario("glm5", "b200", "fp4"), scenario("llama3_3_70b", "h200", "fp8", "8k1k")
    chunked = scenario("qwen3_5_397b", "mi355x", "fp8", prefill_mode="chunked", prefill_chunk_tokens=512)
    trt = glm.model_copy(update={"engine_efficiency": EngineEfficiency(trt=1.3)})
    return lower_cases([
        Case(glm, glm.deployment(tp=4)),
        Case(glm, glm.deployment(tp=8, ep=8, dp_attention=True), with_draft=False),
        Case(llama, llama.deployment(tp=2)),
        Case(chunked, chunked.deployment(tp=8)),
        Case(glm, glm.deployment(tp=4)),  # a duplicate of case 0: ties resolve to the lowest flat index
        # engine limits: vLLM-style token-counted graph limit (eager above 8 tokens), a 512-token step budget
        Case(glm, glm.deployment(tp=8), limits=EngineLimits(cuda_graph_max_batch=8, cuda_graph_counts_tokens=True,
                                                           max_running_requests=48, max_num_tokens=512)),
        Case(trt, trt.deployment(tp=4), engine="trt"),  # an engine's compute efficiency rides in its knobs
    ])


def catalog_cases() -> list[Case]:
    cases = []
    for mk in list_keys("model"):
        for hk in list_keys("hardware"):
            sc = scenario(mk, hk)
            cases.append(Case(sc, sc.deployment(tp=min(8, sc.hardware.scale_up_domain_gpus))))
    return cases


def test_lowering_matches_torch_model() -> None:
    cases = catalog_cases()
    batch = lower_cases(cases)
    c, a = torch.tensor([1.0, 8.0, 64.0, 512.0]), torch.tensor([0.7, 1.0])
    grid = evaluate_grid_torch(batch, c, torch.tensor([0.0, 1.0, 3.0]), a)
    for i, case in enumerate(cases):
        sc, dep = case.scenario, case.deployment
        t = sc.tables(dep)
        for side, table in enumerate((t.target, t.draft)):
            if table is None:
                pad = torch.tensor([OP_PAD[f] for f in OP_FIELDS], dtype=torch.float64)[:, None]
                assert torch.equal(batch.ops[i, 1], pad.expand_as(batch.ops[i, 1]))  # costs 0 s
                continue
            n = len(table.names)
            for f_i, f in enumerate(OP_FIELDS):
                assert torch.equal(batch.ops[i, side, f_i, :n], getattr(table, f)), (case.group_key, dep.label, f)
            assert torch.equal(batch.passes[i, side], torch.stack([getattr(table, f) for f in PASS_FIELDS]))
        assert torch.equal(batch.knobs[i], torch.stack([getattr(sc.knob_tensors, n) for n in KNOB_NAMES]))
        assert batch.scalar("input_tokens")[i] == sc.workload.mean_input_tokens
        assert batch.scalar("gpus")[i] == dep.gpus
        for ik, k in enumerate([0, 1, 3] if sc.has_draft else [0]):
            max_c = sc.memory(dep, True, k).max_concurrency  # k lookahead slots per request at this k
            assert batch.max_batch[i, k] == (max_c if max_c >= 1 else 0)
            limits = StepLimits.of(EngineLimits(), max_c)
            for ia, scale in enumerate(a.tolist()):
                al = al_table(sc.acceptance, scale=scale)[k] if sc.has_draft else torch.tensor(1.0)
                ref = closed_loop(t, sc.knob_tensors, sc.workload, sc.serving, c, torch.tensor(float(k)), al, dep.gpus,
                                  limits)
                fits = torch.full((len(c),), max_c >= 1)  # beyond max_c the engine queues: still feasible
                assert torch.equal(grid["feasible"][i, :, ik, ia], fits)
                for name in ("interactivity", "tput_per_gpu", "output_tput_per_gpu", "step_s", "ttft_s"):
                    want = torch.where(fits, getattr(ref, name), torch.nan).expand(len(c))
                    torch.testing.assert_close(grid[name][i, :, ik, ia], want, rtol=1e-12, atol=0, equal_nan=True,
                                               msg=f"{case.group_key} {dep.label} {name} k={k} a={scale}")
        if not sc.has_draft:
            assert not grid["feasible"][i, :, 1:].any()


@needs_triton
def test_triton_matches_torch_reference(small: CaseBatch) -> None:
    ref = evaluate_grid_torch(small, C, K, A)
    n = small.n_cases * C.numel() * K.numel() * A.numel()
    assert n % st.BLOCK  # a masked tail
    got = st.evaluate_points_triton(small, 0, n, C, K, A)
    assert torch.equal(got["feasible"], ref["feasible"].flatten())
    assert 0 < int(got["feasible"].sum()) < n
    for name in ("interactivity", "tput_per_gpu", "output_tput_per_gpu", "step_s", "ttft_s"):
        torch.testing.assert_close(got[name], ref[name].flatten(), rtol=KERNEL_RTOL, atol=0, equal_nan=True, msg=name)


@needs_triton
def test_triton_matches_torch_reference_on_catalog() -> None:
    batch = lower_cases(catalog_cases())  # every model's operators, padded to the longest
    c, k, a = torch.tensor([2.0, 300.0]), torch.tensor([0.0, 3.0]), torch.tensor([0.9])
    ref = evaluate_grid_torch(batch, c, k, a)
    got = st.evaluate_points_triton(batch, 0, ref["feasible"].numel(), c, k, a)
    for name, v in ref.items():
        torch.testing.assert_close(got[name], v.flatten(), rtol=KERNEL_RTOL, atol=0, equal_nan=True, msg=name)


def brute_force(batch: CaseBatch, bins: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The binned frontier by a Python loop over every point."""
    pts = {k: v.flatten().numpy() for k, v in evaluate_grid_torch(batch, C, K, A).items()}
    best = np.full((len(batch.groups), 2, bins), np.nan)
    index = np.full(best.shape, -1)
    slots = {}
    for i in range(pts["feasible"].size):
        x, y = pts["interactivity"][i], pts["tput_per_gpu"][i]
        b = int(np.floor((np.log(x) - np.log(lo)) * (bins / (np.log(hi) - np.log(lo))))) if pts["feasible"][i] else -1
        if not 0 <= b < bins:
            continue
        case, ik = i // (C.numel() * K.numel() * A.numel()), i // A.numel() % K.numel()
        slot = (int(batch.group[case]), int(K[ik] > 0), b)
        slots[i] = slot
        if index[slot] < 0 or y > best[slot]:
            best[slot], index[slot] = y, i
    for i, slot in slots.items():  # a tie within frontier.TIE_RTOL of the slot's best: the lowest index wins
        if i < index[slot] and pts["tput_per_gpu"][i] >= best[slot] * (1.0 - TIE_RTOL):
            index[slot] = i
    return best, index


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
def test_frontier_bins_match_brute_force(small: CaseBatch, backend: str) -> None:
    bins, lo, hi = 64, 1.0, 1e3
    best, index = brute_force(small, bins, lo, hi)
    f = sweep(small, C, K, A, backend=backend, bins=bins, interactivity_range=(lo, hi), return_points=True)
    assert (index >= 0).sum() > 10 and (index >= 0).any(axis=(0, 2)).all()  # both sides populated
    np.testing.assert_array_equal(f.index.numpy(), index)
    np.testing.assert_allclose(f.best.numpy(), best, rtol=KERNEL_RTOL)
    hit = f.index >= 0
    case, ic, ik, ia = f.unravel(f.index[hit])
    np.testing.assert_allclose(f.interactivity[hit], f.points["interactivity"][case, ic, ik, ia], rtol=1e-12)
    assert torch.equal(f.points["feasible"], evaluate_grid_torch(small, C, K, A)["feasible"])
    assert not (case == 4).any()  # the duplicate of case 0 never wins a tie
    front = f.front(small.groups[0], 1)
    assert front["index"].size and (np.diff(front["interactivity"]) > 0).all() and (np.diff(front["tput_per_gpu"]) < 0).all()


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
def test_chunked_sweep_equals_one_chunk(small: CaseBatch, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = sweep(small, C, K, A, backend=backend, bins=512)
    seen: list[int] = []
    name = "evaluate_points_triton" if backend == "triton" else "evaluate_rows_torch"
    inner = getattr(st, name)
    monkeypatch.setattr(st, name, lambda *args: seen.append(args[2] if backend == "triton" else 15 * len(args[1]))
                        or inner(*args))  # a torch row: 5 k x 3 a = 15 points
    per_point = st.bytes_per_point(small, backend)
    parts = sweep(small, C, K, A, backend=backend, bins=512, max_chunk_bytes=37 * per_point)  # chunk: 37 points
    assert max(seen) == (37 if backend == "triton" else 30) and sum(seen) == small.n_cases * C.numel() * K.numel() * A.numel()
    assert torch.equal(parts.index, whole.index)
    torch.testing.assert_close(parts.best, whole.best, rtol=0, atol=0, equal_nan=True)


def test_compiled_torch_backend_equals_eager(small: CaseBatch) -> None:
    """compile_torch (torch.compile of the same reference) changes speed, not results."""
    eager = sweep(small, C, K, A, backend="torch", bins=512)
    fused = sweep(small, C, K, A, backend="torch", bins=512, compile_torch=True)
    assert torch.equal(fused.index, eager.index)
    torch.testing.assert_close(fused.best, eager.best, rtol=1e-12, atol=0, equal_nan=True)


def test_clear_errors(small: CaseBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="no cases"):
        lower_cases([])
    with pytest.raises(ValueError, match="unknown backend"):
        sweep(small, C, K, A, backend="cuda")
    with pytest.raises(ValueError, match="concurrency must be a non-empty"):
        sweep(small, torch.tensor([]), K, A)
    with pytest.raises(ValueError, match="whole numbers"):
        evaluate_grid_torch(small, C, torch.tensor([1.5]), A)
    with pytest.raises(ValueError, match="max_chunk_bytes"):
        sweep(small, C, K, A, backend="torch", chunk_points=1 << 20, max_chunk_bytes=1 << 20)
    with pytest.raises(ValueError, match="return_points"):
        sweep(small, C, K, A, backend="torch", return_points=True, max_chunk_bytes=1 << 14)
    with pytest.raises(ValueError, match="unknown metric"):
        sweep(small, C, K, A, metric="goodput")
    if st.triton is not None:
        monkeypatch.setattr(st, "_sweep_kernel", object())  # as if imported without TRITON_INTERPRET=1
        with pytest.raises(ValueError, match="CUDA device"):
            st.evaluate_points_triton(small, 0, 10, C, K, A)


LISTS = {"op": OP_FIELDS, "passes": PASS_FIELDS, "knob": KNOB_NAMES, "scalar": SCALAR_FIELDS}


@pytest.mark.parametrize("section,field", [("op", "imbalance_weight"), ("passes", "scale_out"), ("knob", "moe_imbalance"),
                                           ("scalar", "max_draft_tokens"), ("scalar", "acceptance_scale")])
def test_layout_guard_names_a_missing_field(section: str, field: str) -> None:
    """Every field the kernel reads is checked, not only the first few: dropping one is a clear error."""
    lacking = tuple(f for f in LISTS[section] if f != field)
    with pytest.raises(ValueError, match=f"reads {section.removesuffix('es')} field.*{field}, missing"):
        st.kernel_layout(**{section: lacking})


@needs_triton
def test_triton_reads_fields_by_name(small: CaseBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reverse every section's field order (the rows and the lists alike): the kernel still reads each field."""
    c, k, a = C[:3], K[:3], A[1:2]
    ref = evaluate_grid_torch(small, c, k, a)
    flipped = dataclasses.replace(small, ops=small.ops.flip(2), passes=small.passes.flip(2),
                                  knobs=small.knobs.flip(1), scalars=small.scalars.flip(1))
    layout = st.kernel_layout(**{name: fields[::-1] for name, fields in LISTS.items()})
    assert layout["OP"].weight_bytes == len(OP_FIELDS) - 1 - OP_FIELDS.index("weight_bytes")
    monkeypatch.setattr(st, "LAYOUT", layout)
    got = st.evaluate_points_triton(flipped, 0, ref["feasible"].numel(), c, k, a)
    assert 0 < int(got["feasible"].sum()) < got["feasible"].numel()
    for name, v in ref.items():
        torch.testing.assert_close(got[name], v.flatten(), rtol=KERNEL_RTOL, atol=0, equal_nan=True, msg=name)


COMPILE_SM90 = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import kernels.sweep_triton as st
fn = st._sweep_kernel
consts = {**st.LAYOUT, "THROTTLE_STEPS": st.THROTTLE_BISECTION_STEPS, "MAX_BATCH": st.MAX_BISECTION_BATCH,
          "BLOCK": st.BLOCK}
sig = {n: "constexpr" if n in consts else "*fp64" if n.endswith("_ptr") else "i32" for n in fn.arg_names}
sig["off"] = st.Offsets(*["i32"] * len(st.SECTIONS))  # the row's section offsets: a tuple argument
print(len(triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", 90, 32)).asm["ptx"]))
"""


@needs_triton
def test_kernel_compiles_for_a_gpu() -> None:
    """The real Triton front end (not the interpreter) accepts the kernel and its constexpr layouts: PTX for sm_90."""
    pytest.importorskip("triton.backends.nvidia", reason="triton without its NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", COMPILE_SM90], cwd=root, env={**env, "PYTHONPATH": str(root)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split()[-1]) > 10_000  # chars of PTX


# ----------------------------------------------------------------------------- deployments beyond one node
DEP16 = WorkerSpec(tp=16, ep=16, dp_attention=True)
DEP4 = WorkerSpec(tp=4, ep=4, dp_attention=True)
TEP8 = WorkerSpec(tp=8, ep=8)


def cluster_cases() -> list[Case]:
    """Every shape beyond one node: wide EP in an NVL72 domain and across two HGX nodes, EPLB slots, xPyD with
    node-sized and wide-EP decode workers, and a prefill-starved 1P1D that is throttled."""
    gb, b2 = scenario("deepseek_r1", "gb200", "fp4", "8k1k"), scenario("deepseek_r1", "b200", "fp4", "8k1k")
    return [
        Case(gb, DEP16), Case(b2, DEP16), Case(b2, DEP16, with_draft=False),
        Case(gb, WorkerSpec(tp=24, ep=24, dp_attention=True, redundant_experts=32)),
        Case(b2, DisaggregatedSpec(prefill=TEP8, prefill_workers=1, decode=TEP8, decode_workers=4)),
        Case(gb, DisaggregatedSpec(prefill=DEP4, prefill_workers=3, decode=DEP16, decode_workers=1)),
        Case(gb, DisaggregatedSpec(prefill=DEP4, prefill_workers=1, decode=DEP16, decode_workers=2),
             with_draft=False),
        Case(gb, gb.deployment(tp=8, ep=8, dp_attention=True)),  # one node, in the same batch
    ]


CLUSTER_C = torch.tensor([1.0, 7.0, 180.0, 1024.0])
CLUSTER_K = torch.tensor([0.0, 1.0, 3.0])


def direct(case: Case, c: float, k: int, al: float):  # noqa: ANN201
    """The loop of one point called by hand on the case's worker tables (serving.closed_loop_tokens or
    disaggregated_loop_tokens), with its memory at k: what the case table must reproduce."""
    sc, f = case.scenario, (lambda x: torch.tensor(float(x), dtype=torch.float64))  # noqa: E731
    wl, sv, draft = sc.workload, sc.serving, case.has_draft
    mem = worker_memory(sc, case.worker, draft, k)
    limits = StepLimits.of(EngineLimits(), mem.max_concurrency)
    ok = mem.feasible
    if case.disaggregated:
        d = case.deployment
        ok = ok and worker_memory(sc, d.prefill, draft, k).feasible
        kv = kv_transfer(sc, d.prefill, wl.mean_input_tokens, draft)
        m = disaggregated_loop_tokens(
            worker_model(sc, d.decode).tables, worker_model(sc, d.prefill).tables, sc.knob_tensors,
            wl.mean_input_tokens, wl.mean_output_tokens, sv.prefill_chunk_tokens, d.prefill.attention_dp,
            d.prefill_workers, d.decode_workers, kv.bytes_per_request, kv.link_bytes_s, f(c), f(k), f(al), d.gpus,
            limits)
    else:
        m = closed_loop_tokens(worker_model(sc, case.worker).tables, sc.knob_tensors, wl.mean_input_tokens,
                               wl.mean_output_tokens, sv.prefill_mode == "chunked", sv.prefill_chunk_tokens, f(c),
                               f(k), f(al), case.deployment.gpus, limits)
    return m, ok


def test_cluster_cases_lower_to_the_torch_cluster_model() -> None:
    """The batched lowering of multi-node shapes evaluates exactly what the loops give on the workers' own
    tables (serving.closed_loop_tokens / disaggregated_loop_tokens called by hand)."""
    cases = cluster_cases()
    batch = lower_cases(cases)
    grid = evaluate_grid_torch(batch, CLUSTER_C, CLUSTER_K, torch.tensor([1.0]))
    throttled = 0
    for i, case in enumerate(cases):
        sc = case.scenario
        for ik, k in enumerate(CLUSTER_K.long().tolist()):
            if k and not case.has_draft:
                assert not grid["feasible"][i, :, ik].any()
                continue
            if not k and case.has_draft:
                continue  # a case with its draft loaded (memory, KV moved) at k = 0: the points load it only for k > 0
            al = float(al_table(sc.acceptance, scale=1.0)[k])
            for ic, c in enumerate(CLUSTER_C.tolist()):
                m, ok = direct(case, c, k, al)
                throttled += bool(getattr(m, "throttled", False))
                assert bool(grid["feasible"][i, ic, ik, 0]) == ok
                for name in ("interactivity", "tput_per_gpu", "step_s", "ttft_s"):
                    want = float(getattr(m, name))
                    assert float(grid[name][i, ic, ik, 0]) == pytest.approx(want, rel=1e-12), (
                        case.deployment.label, name, c, k)
    assert throttled > 0  # the 1-prefill-worker cases run into their prefill capacity at depth


@needs_triton
def test_triton_matches_torch_reference_beyond_one_node() -> None:
    """Wide EP (NVLink and NICs), EPLB and disaggregated cases through the kernel (interpreter) == torch."""
    batch = lower_cases(cluster_cases())
    a = torch.tensor([0.8, 1.0])
    ref = evaluate_grid_torch(batch, CLUSTER_C, CLUSTER_K, a)
    got = st.evaluate_points_triton(batch, 0, ref["feasible"].numel(), CLUSTER_C, CLUSTER_K, a)
    assert torch.equal(got["feasible"], ref["feasible"].flatten())
    for name in ("interactivity", "tput_per_gpu", "output_tput_per_gpu", "step_s", "ttft_s"):
        torch.testing.assert_close(got[name], ref[name].flatten(), rtol=KERNEL_RTOL, atol=0, equal_nan=True, msg=name)


# ----------------------------------------------------------------------------- each kernel helper == its torch function
HELPERS = ("scaled_al", "busiest_rank_share", "link_knobs", "expected_experts_touched", "pass_cost", "runs_eager", "sampling_time_s",
           "decode_step_terms", "prefill_time_s", "running_batch", "closed_loop_tokens", "prefill_pool",
           "kv_transfer_s", "disaggregated_loop_tokens")


@needs_triton
@pytest.mark.parametrize("which", HELPERS)
def test_kernel_helper_matches_its_torch_function(which: str) -> None:
    """Each @triton.jit helper of the kernel (interpreter) against the torch function it mirrors, on 128 random
    case rows (tables, knobs, scalars) and random inputs: the same float64 arithmetic, to 1e-12 (measured:
    <= 7e-16, 3e-14 for expected_experts_touched's exp / log; most lanes bit-equal)."""
    import kernel_probes as kp  # tests/: after TRITON_INTERPRET=1 is set above

    batch, x = kp.random_batch(seed=HELPERS.index(which))
    want = kp.torch_side(which, batch, x)
    got = kp.probe(which, batch, x, len(want))
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        assert torch.isfinite(w).all(), (which, j)
        torch.testing.assert_close(g, w, rtol=1e-12, atol=0, msg=f"{which} output {j}")
