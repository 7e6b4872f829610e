"""The attention parity fixture: well-formed, and its JAX outputs match an independent float64
numpy computation that reads K/V through the page table, as the engine does."""

import json

import numpy as np
import pytest

from batch_forge import fixtures
from batch_forge.safetensors_io import read_safetensors
from layout import assert_aligned_layout


def _paged_attention(t, scale, causal):
    """float64 softmax(q·kᵀ·scale + mask)·v, one query at a time, keys found through pages."""
    q, k_pages, v_pages = (t[f"input.{n}"].astype(np.float64) for n in ("q", "k_pages", "v_pages"))
    table, seqs = t["input.page_table"], t["input.seqs"]
    page_size, n_kv_heads = k_pages.shape[1], k_pages.shape[2]
    group = q.shape[1] // n_kv_heads
    out = np.zeros_like(q)
    for q_begin, q_len, kv_len, first in seqs:
        for j in range(q_len):
            pos = kv_len - q_len + j
            keys = np.arange(pos + 1 if causal else kv_len)
            pages = table[first + keys // page_size]
            for h in range(q.shape[1]):
                k = k_pages[pages, keys % page_size, h // group]  # [n_keys, hd]
                v = v_pages[pages, keys % page_size, h // group]
                s = k @ q[q_begin + j, h] * scale
                p = np.exp(s - s.max())
                out[q_begin + j, h] = p @ v / p.sum()
    return out


@pytest.mark.parametrize("seed", [0, 3])
def test_attention_fixture_matches_numpy(tmp_path, seed):
    path = tmp_path / "attention.safetensors"
    fixtures.write_fixture("attention", seed, path)
    assert_aligned_layout(path)
    meta, t = read_safetensors(path)
    assert meta["batch_forge.fixture.op"] == "attention"
    params = json.loads(meta["batch_forge.fixture.params"])
    tol = json.loads(meta["batch_forge.fixture.tolerance"])
    assert t["input.page_table"].dtype == np.int32 and t["input.seqs"].dtype == np.int32
    assert t["input.k_pages"].shape[1] == params["page_size"]
    seqs = t["input.seqs"]
    # A prefill, a decode and a chunked prefill, rows back to back, pages shuffled.
    assert [tuple(s[1:3]) for s in seqs] == [(19, 19), (1, 45), (7, 30)]
    assert list(seqs[:, 0]) == [0, 19, 20]
    assert not np.array_equal(t["input.page_table"], np.sort(t["input.page_table"]))
    for causal, name in ((True, "out_causal"), (False, "out_full")):
        want = _paged_attention(t, params["scale"], causal)
        np.testing.assert_allclose(t[f"output.{name}"], want, atol=tol["atol"], rtol=tol["rtol"])
    # The two outputs differ wherever a token does not see the whole cache.
    assert not np.allclose(t["output.out_causal"][:19], t["output.out_full"][:19])
