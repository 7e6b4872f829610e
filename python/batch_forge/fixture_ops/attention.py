"""Parity fixture of fused attention over the paged KV cache (jax.nn.dot_product_attention is the
reference).

The sequences' queries, keys and values are drawn in numpy; JAX computes each sequence's
attention from the contiguous K/V with GQA and the causal mask by absolute position (the j-th of
q_len new tokens sits at kv_len - q_len + j, as in families/transformer.py). The fixture stores
the keys and values scattered into a shuffled pool of pages, which is what the engine reads.

Tensors:
    input.q           f32 [rows, n_heads, head_dim]       the new tokens of all sequences
    input.k_pages     f32 [n_pages, page_size, n_kv_heads, head_dim]
    input.v_pages     f32 [n_pages, page_size, n_kv_heads, head_dim]
    input.page_table  i32 [total pages]                   every sequence's pages, back to back
    input.seqs        i32 [n_seqs, 4]                     q_begin, q_len, kv_len, first entry
                                                          of its pages in page_table
    output.out_causal f32 [rows, n_heads, head_dim]       causal attention
    output.out_full   f32 [rows, n_heads, head_dim]       every query sees all kv_len keys
Params: scale, page_size.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ..fixtures import Fixture, f32, op

# (q_len, kv_len): a prefill, a decode with a long cache and a chunked prefill.
SEQS = [(19, 19), (1, 45), (7, 30)]
N_HEADS, N_KV_HEADS, HEAD_DIM, PAGE_SIZE = 4, 2, 40, 8


def _attend(q, k, v, q_len, kv_len, scale, causal):
    """q: [q_len, H, hd], k/v: [kv_len, G, hd] -> [q_len, H, hd] (JAX)."""
    positions = kv_len - q_len + jnp.arange(q_len)  # absolute position of each new token
    if causal:
        mask = positions[:, None] >= jnp.arange(kv_len)[None, :]  # [q_len, kv_len]
    else:
        mask = jnp.ones((q_len, kv_len), dtype=bool)
    # dot_product_attention takes [batch, T, heads, hd]; K/V heads divide the query heads (GQA:
    # query head h reads KV head h // (H / G)).
    out = jax.nn.dot_product_attention(q[None], k[None], v[None], scale=scale,
                                       mask=mask[None, None], implementation="xla")
    return out[0]


@op("attention")
def _attention(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    rows = sum(q_len for q_len, _ in SEQS)
    scale = float(1.0 / np.sqrt(HEAD_DIM))
    q = f32(rng.standard_normal((rows, N_HEADS, HEAD_DIM)) * 1.5)  # [rows, H, hd]
    pages_per_seq = [-(-kv_len // PAGE_SIZE) for _, kv_len in SEQS]
    n_pages = sum(pages_per_seq) + 2  # two spare pages no sequence reads
    order = rng.permutation(n_pages).astype(np.int32)  # shuffled: pages are not in sequence order
    k_pages = f32(rng.standard_normal((n_pages, PAGE_SIZE, N_KV_HEADS, HEAD_DIM)))
    v_pages = f32(rng.standard_normal((n_pages, PAGE_SIZE, N_KV_HEADS, HEAD_DIM)))

    seqs, out_causal, out_full = [], [], []
    q_begin = table_begin = 0
    for (q_len, kv_len), n in zip(SEQS, pages_per_seq):
        table = order[table_begin:table_begin + n]
        # The sequence's contiguous K/V: [kv_len, G, hd], gathered from its pages in order.
        k = k_pages[table].reshape(-1, N_KV_HEADS, HEAD_DIM)[:kv_len]
        v = v_pages[table].reshape(-1, N_KV_HEADS, HEAD_DIM)[:kv_len]
        qs = jnp.asarray(q[q_begin:q_begin + q_len])
        out_causal.append(_attend(qs, jnp.asarray(k), jnp.asarray(v), q_len, kv_len, scale, True))
        out_full.append(_attend(qs, jnp.asarray(k), jnp.asarray(v), q_len, kv_len, scale, False))
        seqs.append((q_begin, q_len, kv_len, table_begin))
        q_begin += q_len
        table_begin += n

    inputs = {"q": q, "k_pages": k_pages, "v_pages": v_pages,
              "page_table": order[:table_begin].copy(),
              "seqs": np.asarray(seqs, dtype=np.int32)}
    outputs = {"out_causal": f32(jnp.concatenate(out_causal)),
               "out_full": f32(jnp.concatenate(out_full))}
    return Fixture("attention", seed, inputs, outputs, {"scale": scale, "page_size": PAGE_SIZE},
                   atol=1e-5, rtol=1e-4)
