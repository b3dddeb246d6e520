"""HBM capacity: weights + draft module + KV cache / recurrent state of the concurrent requests must fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.lowering import MemoryFootprint


@dataclass(frozen=True)
class MemoryCheck:
    weights_gb: float
    cache_gb_per_request: float
    capacity_gb: float
    max_concurrency: int  # deepest concurrency that fits (0: not even the weights fit)

    def fits(self, concurrency: int) -> bool:
        """Whether all `concurrency` requests run at once (beyond it the engine queues the rest)."""
        return 1 <= concurrency <= self.max_concurrency

    @property
    def feasible(self) -> bool:
        """Whether the deployment holds at least one request (weights and one request's cache fit)."""
        return self.max_concurrency >= 1

    def running(self, concurrency: int) -> int:
        """Requests the engine admits at once out of `concurrency` (the rest wait in its queue)."""
        return min(concurrency, self.max_concurrency)

    def reason(self, concurrency: int) -> str:
        if self.max_concurrency == 0:
            return (f"weights need {self.weights_gb:.1f} GB per GPU, more than the {self.capacity_gb:.1f} GB "
                    "available for weights + KV")
        if concurrency > self.max_concurrency:
            return (f"concurrency {concurrency} needs more KV cache than fits (max {self.max_concurrency} at "
                    f"{self.cache_gb_per_request * 1e3:.1f} MB per request per GPU)")
        return ""


def check_memory(fp: MemoryFootprint, hbm_capacity_gb: float, mem_fraction: float, attention_dp: int,
                 request_tokens: float, lookahead_tokens: int = 0) -> MemoryCheck:
    """Engines give `mem_fraction` of HBM to weights + cache (the rest: activations, graphs, reserve).

    Each request reserves cache for its whole length `request_tokens` (prompt + output) plus the
    `lookahead_tokens` slots speculation writes ahead of the accepted tokens (SGLang allocates the verify
    pass's draft-token slots per request before verifying; vLLM reserves num_speculative_tokens lookahead
    slots per request), and for linear attention k + 1 more copies of its recurrent state. Under TP the MLA
    latent cache is replicated on every rank; DP-attention spreads requests over `attention_dp` ranks.
    """
    capacity = hbm_capacity_gb * 1e9 * mem_fraction
    # linear attention under speculation keeps a state per verified position beside the committed one (SGLang
    # MambaPool: intermediate_ssm_state_cache holds speculative_num_draft_tokens = k + 1 states per slot)
    state_copies = 1.0 if lookahead_tokens == 0 else lookahead_tokens + 2.0
    per_request = fp.cache_bytes_per_request(request_tokens + lookahead_tokens, state_copies)
    free = capacity - fp.weight_bytes
    if free <= 0:
        max_c = 0
    elif per_request <= 0:
        max_c = 1 << 30
    else:
        max_c = int(math.floor(free / per_request)) * attention_dp
    return MemoryCheck(fp.weight_bytes / 1e9, per_request / 1e9, capacity / 1e9, max_c)
