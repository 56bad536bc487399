"""The generative judge's prompt: what the model reads and which words it answers with.

The paper's prompt and label words are not public. This one shows two unfinished traces of one problem and asks
for a single word, "yes" (same final answer) or "no". Everything is configurable from the model config
(`model.prompt.system=...`, `model.prompt.label_words=[same,different]`) and is saved with every export, so
training, offline evaluation and online pruning always read the same prompt.

    >>> p = JudgePrompt()
    >>> p.user_message("Let x = 2", "Since x = 3")[:27]
    'Here are the beginnings of '
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_SYSTEM = (
    "You are an expert judge of mathematical reasoning. Two solutions to the same problem were written "
    "independently and both were cut off before they finished. From their beginnings alone, predict whether "
    "the two solutions will end with the same final answer. Equivalent answers written differently count as "
    "the same; different methods that lead to the same result also count as the same."
)

DEFAULT_USER_TEMPLATE = (
    "Here are the beginnings of two solutions to the same problem.\n\n"
    "### Solution A (unfinished)\n{a}\n\n"
    "### Solution B (unfinished)\n{b}\n\n"
    "Will Solution A and Solution B reach the same final answer? "
    "Reply with one word: {same} if they will, {different} if they will not."
)


@dataclass
class JudgePrompt:
    """System text, user template and label words of the generative judge.

    Args:
        system: system message; empty string for none (some chat templates reject a system role).
        user_template: user message with the placeholders `{a}` and `{b}` (the two truncated traces) and,
            optionally, `{same}` / `{different}` (the label words). Traces may contain braces: only the
            template is parsed.
        label_words: (word for "same answer", word for "different answer"). Each must be one token of the
            judge's tokenizer, as generated right after `answer_prefix`.
        answer_prefix: text appended after the chat template's generation prompt, before the label word
            (for example "Answer: "); empty by default.
    """

    system: str = DEFAULT_SYSTEM
    user_template: str = DEFAULT_USER_TEMPLATE
    label_words: Sequence[str] = field(default_factory=lambda: ("yes", "no"))
    answer_prefix: str = ""

    def __post_init__(self) -> None:
        self.label_words = tuple(self.label_words)
        if not all(isinstance(w, str) for w in self.label_words):
            # YAML 1.1 reads unquoted yes/no as booleans: write label_words: ["yes", "no"]
            raise ValueError(f"label_words must be strings (quote yes/no in YAML), got {self.label_words!r}")
        if len(self.label_words) != 2 or self.label_words[0] == self.label_words[1]:
            raise ValueError(f"label_words must be two different words (same, different), got {self.label_words}")
        for key in ("{a}", "{b}"):
            if key not in self.user_template:
                raise ValueError(f"user_template has no {key} placeholder: {self.user_template!r}")
        try:
            self.user_message("", "")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"user_template may only use {{a}}, {{b}}, {{same}}, {{different}} (double other braces): {err!r}"
            ) from None

    @property
    def same_word(self) -> str:
        return self.label_words[0]

    @property
    def different_word(self) -> str:
        return self.label_words[1]

    def user_message(self, a: str, b: str) -> str:
        """The user turn for traces `a` and `b` (single-pass formatting: braces inside traces stay literal)."""
        return self.user_template.format_map(
            {"a": a, "b": b, "same": self.same_word, "different": self.different_word}
        )

    def messages(self, a: str, b: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return [*msgs, {"role": "user", "content": self.user_message(a, b)}]

    def render(self, tokenizer: Any, a: str, b: str) -> str:
        """The full model input as text, ending exactly where the label word is generated.

        Uses the tokenizer's chat template with a generation prompt; a tokenizer without one gets a plain
        "system / user / Answer:" layout.
        """
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(self.messages(a, b), tokenize=False, add_generation_prompt=True)
        else:
            head = f"{self.system}\n\n" if self.system else ""
            text = f"{head}{self.user_message(a, b)}\n\nAnswer: "
        return text + self.answer_prefix

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label_words"] = list(self.label_words)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JudgePrompt:
        return cls(**d)
