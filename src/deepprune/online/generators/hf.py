"""Live generation with Hugging Face transformers (`generate`, CPU or GPU), behind the Generator contract.

Traces of one problem are generated as one left-padded batch, ``chunk_tokens`` new tokens at a time, so a
stop predicate (``until``, e.g. :meth:`deepprune.truncation.PrefixRule.reached`) is checked between
chunks and a trace is cut at the exact token where it fired (tokens sampled past that point are dropped
from the trace and counted in ``stats["discarded_tokens"]``). Sampling is seeded per trace: each trace owns a
``torch.Generator`` seeded with ``derive_seed(seed, i)`` and samples its token itself, so a trace's tokens do
not depend on which other traces share its batch. Token confidences follow DeepConf: ``-mean`` of the top-k
log-probabilities of the raw (untempered) next-token distribution, the same quantity vLLM reports with
``logprobs=k`` in its default ``raw_logprobs`` mode.

The prompt helpers here (:func:`problem_prompt_ids`, :func:`build_prompt_ids`, :func:`topk_confidence`) are shared
with the vLLM backend. A problem whose ``meta["prompt_token_ids"]`` is a list of token ids is prompted with
exactly those (a server that applied the chat template to a request's messages itself); otherwise the prompt is
``prompt_template`` filled with the question, chat-templated.

    gen = HFGenerator(model="path/to/hf_dir", max_tokens=256)
    states = gen.start(problem, n=8, seed=0)
    gen.advance(states, until=TokenPrefix(64, tokenizer=None).reached)   # prefixes
    gen.advance(states[:2])                                         # finish two of them
    gen.release(states[2:]); gen.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepprune.online.generators.base import TraceState, derive_seed
from deepprune.runtime import get_logger

if TYPE_CHECKING:
    from deepprune.sources import Problem

log = get_logger(__name__)

#: The DeepSeek-R1 / Qwen3 math prompt suffix (their model cards ask for it).
DEFAULT_PROMPT_TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."


def build_prompt_ids(
    tokenizer: Any,
    question: str,
    template: str = DEFAULT_PROMPT_TEMPLATE,
    system_prompt: str | None = None,
    use_chat_template: bool = True,
) -> list[int]:
    """Token ids of the generation prompt: ``template`` with ``{question}`` filled, chat-templated when possible.

    ``{question}`` is substituted literally (not ``str.format``): templates may hold braces, e.g. ``\\boxed{}``.
    """
    content = template.replace("{question}", question)
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": content})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    prefix = f"{system_prompt}\n\n" if system_prompt else ""
    return list(tokenizer(prefix + content)["input_ids"])


PROMPT_IDS_KEY = "prompt_token_ids"


def problem_prompt_ids(
    tokenizer: Any, problem: Problem, template: str, system_prompt: str | None, use_chat_template: bool
) -> list[int]:
    """The prompt of ``problem``: its ``meta["prompt_token_ids"]`` when given (checked), else
    :func:`build_prompt_ids` of its question."""
    given = (problem.meta or {}).get(PROMPT_IDS_KEY)
    if given is None:
        return build_prompt_ids(tokenizer, problem.question, template, system_prompt, use_chat_template)
    if (
        not isinstance(given, list | tuple)
        or not given
        or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in given)
    ):
        raise ValueError(
            f"problem {problem.problem_id}: meta.{PROMPT_IDS_KEY} must be a non-empty list of token ids (ints >= 0)"
        )
    return list(given)


def topk_confidence(logprobs: Sequence[float]) -> float:
    """DeepConf token confidence: minus the mean of the top-k log-probabilities at one position."""
    return -float(sum(logprobs)) / max(len(logprobs), 1)


def finish_state(state: TraceState, cut: bool = False) -> None:
    """Mark a trace done and extract its final answer (shared by the live backends). ``cut``: it stopped at the
    length limit, not on its own, so only a boxed answer counts (no answer read from a half-written sentence)."""
    from deepprune.answers import extract_answer

    state.finished = True
    state.answer = extract_answer(state.text, finished=not cut)


class _PerTraceSampler:
    """A logits processor that samples each row with its own torch.Generator and forces that token.

    `generate` runs greedily over the returned scores, so the forced token is what it appends; temperature and
    top-p are applied here. Rows are mapped to traces through `generators`, set before each chunk.
    """

    def __init__(self, temperature: float, top_p: float) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generators: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float()
        if self.temperature <= 0:
            chosen = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / self.temperature, dim=-1)
            if self.top_p < 1.0:
                sorted_p, order = probs.sort(dim=-1, descending=True)
                # keep the smallest set whose mass reaches top_p (always at least the top token)
                drop = sorted_p.cumsum(dim=-1) - sorted_p >= self.top_p
                sorted_p = sorted_p.masked_fill(drop, 0.0)
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            chosen = torch.stack(
                [torch.multinomial(probs[r], 1, generator=g)[0] for r, g in enumerate(self.generators)]
            )
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(-1, chosen.unsqueeze(-1), 0.0)
        return forced


@dataclass
class _HFTrace:
    """``TraceState.handle`` of a transformers trace: its prompt, generated ids, sampler generator, released flag."""

    prompt: list[int]
    ids: list[int]
    rng: Any
    released: bool = False


class HFGenerator:
    """Batched, per-trace seeded generation with transformers; see the module docstring."""

    def __init__(
        self,
        model: str | Path,
        tokenizer: str | Path | None = None,
        max_tokens: int = 512,
        temperature: float = 0.6,
        top_p: float = 0.95,
        chunk_tokens: int = 32,
        logprobs: int = 20,
        batch_size: int = 16,
        dtype: str = "float32",
        device: str = "cpu",
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        model_name: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_tokens < 1 or chunk_tokens < 1 or batch_size < 1:
            raise ValueError("max_tokens, chunk_tokens and batch_size must be >= 1")
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or model))
        self.model = AutoModelForCausalLM.from_pretrained(str(model), dtype=getattr(torch, dtype)).to(device).eval()
        self.model_name = model_name or Path(str(model)).name
        self.max_tokens = max_tokens
        self.chunk_tokens = chunk_tokens
        self.logprobs = logprobs
        self.batch_size = batch_size
        self.device = device
        self.prompt_template = prompt_template
        self.system_prompt = system_prompt
        self.use_chat_template = use_chat_template
        self._sampler = _PerTraceSampler(temperature, top_p)
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.stats = {"generated_tokens": 0, "discarded_tokens": 0, "forward_chunks": 0}

    def start(self, problem: Problem, n: int, seed: int) -> list[TraceState]:
        import torch

        prompt = problem_prompt_ids(
            self.tokenizer, problem, self.prompt_template, self.system_prompt, self.use_chat_template
        )
        seeds = [derive_seed(seed, i) for i in range(n)]
        return [
            TraceState(index=i, seed=s, handle=_HFTrace(prompt, [], torch.Generator().manual_seed(s % 2**63)))
            for i, s in enumerate(seeds)
        ]

    def advance(self, states: list[TraceState], until: Callable[[TraceState], bool] | None = None) -> None:
        active = [s for s in states if not s.finished and not s.handle.released]
        while active:
            for lo in range(0, len(active), self.batch_size):
                self._chunk(active[lo : lo + self.batch_size], until)
            active = [s for s in active if not s.finished and not (until is not None and until(s))]

    def release(self, states: list[TraceState]) -> None:
        # generation only happens inside advance(), so a released trace simply is never scheduled again
        for state in states:
            state.handle.released = True

    def close(self) -> None:
        self.model = None

    def _chunk(self, batch: list[TraceState], until: Callable[[TraceState], bool] | None) -> None:
        import torch
        from transformers import LogitsProcessorList

        rows = [s.handle.prompt + s.handle.ids for s in batch]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows], device=self.device)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        budget = min(self.chunk_tokens, max(self.max_tokens - s.num_tokens for s in batch))
        self._sampler.generators = [s.handle.rng for s in batch]
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=budget,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=LogitsProcessorList([self._sampler]),
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids,
            )
        new = out.sequences[:, width:].tolist()
        top = torch.stack(out.logits, dim=1).float().log_softmax(-1).topk(self.logprobs, dim=-1).values
        confs = (-top.mean(-1)).tolist()  # [batch, steps]
        self.stats["forward_chunks"] += 1
        for r, state in enumerate(batch):
            real = next((j + 1 for j, t in enumerate(new[r]) if t in self.eos_ids), len(new[r]))
            kept = self._take(state, new[r][: min(real, self.max_tokens - state.num_tokens)], confs[r], until)
            self.stats["generated_tokens"] += real
            self.stats["discarded_tokens"] += real - kept

    def _take(self, state: TraceState, new: list[int], confs: list[float], until: Callable | None) -> int:
        """Append sampled tokens one by one, stopping at EOS, the length limit, or where `until` fires.

        Returns how many of `new` the trace kept.
        """
        ids = state.handle.ids
        base_text, start = state.text, len(ids)
        kept = len(new)
        for j, tok in enumerate(new):
            ids.append(tok)
            state.num_tokens += 1
            state.token_confidences.append(float(confs[j]))
            if tok in self.eos_ids or state.num_tokens >= self.max_tokens:
                kept = j + 1
                break
            if until is not None:
                state.text = base_text + self.tokenizer.decode(ids[start:], skip_special_tokens=True)
                if until(state):
                    kept = j + 1
                    break
        state.text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if ids and (ids[-1] in self.eos_ids or state.num_tokens >= self.max_tokens):
            finish_state(state, cut=ids[-1] not in self.eos_ids)
        return kept


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = eos if isinstance(eos, list) else [eos]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [int(i) for i in ids if i is not None]
