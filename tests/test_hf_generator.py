"""HFGenerator on the tiny Qwen3: exact prefix cuts, per-trace seeding, token accounting, confidences, EOS."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepprune.online.generators.base import Generator, derive_seed
from deepprune.sources import Problem
from deepprune.truncation import TokenPrefix

PROBLEM = Problem("p1", "What is 2 + 2?", gold="4")


@pytest.fixture(scope="module")
def hf_gen(tiny_qwen3_dir: Path):
    from deepprune.online.generators.hf import HFGenerator

    gen = HFGenerator(model=tiny_qwen3_dir, max_tokens=12, chunk_tokens=5, temperature=1.0, top_p=0.9, batch_size=4)
    yield gen
    gen.close()


def test_contract_and_fresh_states(hf_gen) -> None:
    assert isinstance(hf_gen, Generator)
    states = hf_gen.start(PROBLEM, 3, seed=7)
    assert [s.seed for s in states] == [derive_seed(7, i) for i in range(3)]
    assert all(s.num_tokens == 0 and s.text == "" and not s.finished for s in states)


def test_prefix_cut_is_exact_then_continuation_adds_up(hf_gen) -> None:
    states = hf_gen.start(PROBLEM, 3, seed=1)
    hf_gen.advance(states, until=TokenPrefix(7, tokenizer=None).reached)  # 7 is not a multiple of chunk_tokens=5
    for s in states:
        assert s.num_tokens == 7 and len(s.token_confidences) == 7 and not s.finished
        assert s.text == hf_gen.tokenizer.decode(s.handle.ids, skip_special_tokens=True)
    prefixes = [list(s.handle.ids) for s in states]
    hf_gen.release(states[2:])
    hf_gen.advance(states)
    for s, prefix in zip(states[:2], prefixes):
        assert s.finished and s.num_tokens == 12 and len(s.token_confidences) == 12
        assert s.handle.ids[:7] == prefix  # continuation extends, never rewrites
    assert states[2].num_tokens == 7 and not states[2].finished  # released: never advanced again


def test_seeding_is_per_trace_not_per_batch(tiny_qwen3_dir: Path, hf_gen) -> None:
    from deepprune.online.generators.hf import HFGenerator

    batched = hf_gen.start(PROBLEM, 3, seed=3)
    hf_gen.advance(batched)
    single = HFGenerator(model=tiny_qwen3_dir, max_tokens=12, chunk_tokens=5, temperature=1.0, top_p=0.9, batch_size=1)
    alone = single.start(PROBLEM, 3, seed=3)
    single.advance(alone)
    assert [s.text for s in alone] == [s.text for s in batched]
    assert len({s.text for s in batched}) == 3  # distinct seeds give distinct samples
    other = single.start(PROBLEM, 1, seed=4)
    single.advance(other)
    assert other[0].text != batched[0].text


def test_confidences_match_independent_forward(hf_gen) -> None:
    import torch

    states = hf_gen.start(PROBLEM, 1, seed=5)
    hf_gen.advance(states, until=TokenPrefix(6, tokenizer=None).reached)
    ids = states[0].handle.prompt + states[0].handle.ids
    with torch.no_grad():
        logits = hf_gen.model(torch.tensor([ids])).logits[0].float()
    p = len(states[0].handle.prompt)
    top = logits[p - 1 : p - 1 + 6].log_softmax(-1).topk(20, dim=-1).values
    expected = (-top.mean(-1)).tolist()
    assert states[0].token_confidences == pytest.approx(expected, abs=1e-3)
    assert all(c > 0 for c in expected)


def test_eos_finishes_and_extracts_answer(tiny_qwen3_dir: Path) -> None:
    from deepprune.answers import extract_answer
    from deepprune.online.generators.hf import HFGenerator

    gen = HFGenerator(model=tiny_qwen3_dir, max_tokens=12, chunk_tokens=4, temperature=0.0)
    first = gen.start(PROBLEM, 1, seed=0)
    gen.advance(first, until=TokenPrefix(8, tokenizer=None).reached)
    greedy = first[0].handle.ids
    # pretend the first greedy token not seen before (after position 0) is EOS: the trace must end right there
    cut = next((j for j in range(1, 8) if greedy[j] not in greedy[:j]), 0) + 1
    gen.eos_ids = [greedy[cut - 1]]
    states = gen.start(PROBLEM, 2, seed=0)
    gen.advance(states)
    for s in states:
        assert s.finished and s.handle.ids == greedy[:cut] and s.num_tokens == cut
        assert s.answer == extract_answer(s.text)
    assert gen.stats["discarded_tokens"] >= 0
