"""The expected cost of one teacher answering one prompt, before it answers.

Per teacher, from its calibration responses (every teacher answers the calibration set, so
every teacher has them before the router exists):

- input tokens ``a_in + b_in · chars(x)`` and output tokens ``a_out + b_out · chars(x)``, least
  squares on the prompt's length in characters (a longer prompt is tokenised into more tokens
  and, on most tasks, answered at more length); the mean when the calibration prompts' lengths
  do not vary enough to fit a slope; output clipped to ``[1, max_new_tokens]``;
- seconds per response proportional to its expected output tokens (the calibration mean
  seconds per output token), for a price per second;
- before any calibration response: ``(chars + system prompt + template) / 4`` input tokens and
  ``max_new_tokens`` output tokens (as ``persyn estimate`` assumes).

The price of a response (``TeacherConfig``'s prices):
``tokens_in · price_input_per_million / 1e6 + tokens_out · price_output_per_million / 1e6 +
seconds · price_per_second``, times ``batch.price_factor`` for a teacher that generates through
batch files. When no teacher of the pool has a price the unit is tokens and a
response costs ``tokens_in + tokens_out``. ``engine: reference`` teachers cost nothing. The
same formula prices what was actually spent, from the tokens and seconds each stored response
reports, so the estimate can be checked after generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from persyn.config import TeacherConfig
from persyn.core.records import Generation

MIN_FIT = 5  # calibration responses needed to fit a slope on prompt length
CHAT_MARKUP = 64  # tokens a chat template adds around a prompt, at most (worst-case input)


@dataclass
class LinearTokens:
    """Tokens as ``intercept + slope · chars``, clipped to ``[low, high]``."""

    intercept: float
    slope: float
    low: float = 0.0
    high: float = float("inf")

    def __call__(self, chars: np.ndarray) -> np.ndarray:
        return np.clip(self.intercept + self.slope * chars, self.low, self.high)

    @classmethod
    def fit(cls, chars: np.ndarray, tokens: np.ndarray, low: float, high: float) -> LinearTokens:
        """Least squares of ``tokens`` on ``chars``; the mean when fewer than ``MIN_FIT``
        points or (almost) no spread in ``chars``."""
        if len(tokens) >= MIN_FIT and np.std(chars) > 1e-9:
            slope, intercept = np.polyfit(chars, tokens, 1)
            return cls(float(intercept), float(slope), low, high)
        return cls(float(np.mean(tokens)), 0.0, low, high)


@dataclass
class TeacherCost:
    """One teacher's cost model (see the module docstring).

    Attributes:
        name: the teacher.
        free: an ``engine: reference`` teacher (costs nothing).
        tokens_in / tokens_out: expected tokens of a response as a function of prompt chars.
        seconds_per_token: calibration seconds per output token (None: not measured).
        source: ``calibration`` (fitted on responses) or ``settings`` (no response yet).
    """

    name: str
    free: bool
    tokens_in: LinearTokens
    tokens_out: LinearTokens
    seconds_per_token: float | None
    source: str


class CostModel:
    """Expected and actual cost of responses of a teacher pool.

    Args:
        teachers: the pool's teacher configs (prices, ``max_new_tokens``).
        calibration: ``{teacher: [(prompt chars, Generation)]}``, the calibration responses.

    Attributes:
        unit: ``"currency"`` when any teacher has a price, else ``"tokens"``.
        unpriced: model teachers without a price in a priced pool (they cost 0 there).
    """

    def __init__(self, teachers: list[TeacherConfig], calibration: dict[str, list[tuple[int, Generation]]]):
        self.teachers = list(teachers)
        self.names = [t.name for t in teachers]
        priced = [t for t in teachers if _priced(t)]
        self.unit = "currency" if priced else "tokens"
        self.unpriced = [t.name for t in teachers if t.RUNS_A_MODEL and priced and not _priced(t)]
        self.models = [self._fit(t, calibration.get(t.name, [])) for t in teachers]

    @staticmethod
    def _fit(t: TeacherConfig, rows: list[tuple[int, Generation]]) -> TeacherCost:
        if not t.RUNS_A_MODEL:
            zero = LinearTokens(0.0, 0.0)
            return TeacherCost(t.name, True, zero, zero, None, "not a model")
        hi = float(t.max_new_tokens)
        got = [(c, g) for c, g in rows if g.ok and g.completion_tokens is not None]
        if not got:
            extra = len(t.system_prompt or "") + len(t.prompt_template or "")
            return TeacherCost(
                t.name, False, LinearTokens(extra / 4, 0.25), LinearTokens(hi, 0.0, 1.0, hi), None, "settings"
            )
        chars = np.array([c for c, _ in got], dtype=np.float64)
        t_out = np.array([g.completion_tokens for _, g in got], dtype=np.float64)
        t_in = np.array([g.prompt_tokens or 0 for _, g in got], dtype=np.float64)
        seconds = sum(g.seconds for _, g in got)
        per_token = seconds / t_out.sum() if t_out.sum() > 0 and seconds > 0 else None
        return TeacherCost(
            t.name,
            False,
            LinearTokens.fit(chars, t_in, 0.0, float("inf")),
            LinearTokens.fit(chars, t_out, 1.0, hi),
            per_token,
            "calibration",
        )

    def tokens(self, chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected ``(input, output)`` tokens, each ``[len(chars), n_teachers]``."""
        chars = np.asarray(chars, dtype=np.float64)
        t_in = np.stack([m.tokens_in(chars) for m in self.models], axis=1)
        t_out = np.stack([m.tokens_out(chars) for m in self.models], axis=1)
        return t_in, t_out

    def costs(self, chars: np.ndarray) -> np.ndarray:
        """Expected cost ``[len(chars), n_teachers]`` (in ``unit``) of each teacher answering
        each prompt of ``chars`` characters."""
        t_in, t_out = self.tokens(chars)
        cols = []
        for j, (t, m) in enumerate(zip(self.teachers, self.models, strict=True)):
            secs = t_out[:, j] * m.seconds_per_token if m.seconds_per_token is not None else 0.0
            cols.append(self._price(t, t_in[:, j], t_out[:, j], secs))
        return np.stack(cols, axis=1)

    def _price(self, t: TeacherConfig, t_in, t_out, seconds) -> np.ndarray:
        if not t.RUNS_A_MODEL:
            return np.zeros_like(np.asarray(t_in, dtype=np.float64))
        if self.unit == "tokens":
            return np.asarray(t_in + t_out, dtype=np.float64)
        got = price_of(t, t_in, t_out, 0.0 if seconds is None else seconds)
        shape = np.zeros_like(np.asarray(t_in, dtype=np.float64))  # one cost per prompt
        return shape + (0.0 if got is None else np.asarray(got, dtype=np.float64))  # unpriced: 0

    def worst_costs(self, texts: list[str]) -> np.ndarray:
        """The most each teacher's response to each of ``texts`` can cost, ``[len(texts),
        n_teachers]`` in ``unit``: what ``budget.max_cost`` lets a generation out on.

        Output tokens are at most ``max_new_tokens``. Input tokens are at most the UTF-8 bytes
        of the prompt, the system prompt and the prompt template plus ``CHAT_MARKUP`` tokens of
        chat markup (a byte-level BPE token covers at least one byte), or the calibration
        fit when that is larger. Seconds (a price per second) are ``max_new_tokens`` times the
        calibration seconds per output token: an estimate, since time has no bound."""
        nbytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.float64)
        chars = np.array([len(t) for t in texts], dtype=np.float64)
        cols = []
        for t, m in zip(self.teachers, self.models, strict=True):
            if m.free:
                cols.append(np.zeros(len(texts)))
                continue
            extra = len((t.system_prompt or "").encode("utf-8")) + len(
                (t.prompt_template or "").encode("utf-8")
            )
            t_in = np.maximum(nbytes + extra + CHAT_MARKUP, m.tokens_in(chars))
            t_out = np.full(len(texts), float(t.max_new_tokens))
            secs = t_out * m.seconds_per_token if m.seconds_per_token is not None else 0.0
            cols.append(self._price(t, t_in, t_out, secs))
        return np.stack(cols, axis=1) if cols else np.zeros((len(texts), 0))

    def actual(self, gens: list[Generation]) -> float:
        """What ``gens`` cost (in ``unit``), from the tokens and seconds each reports."""
        by_name = dict(zip(self.names, self.teachers, strict=True))
        total = 0.0
        for g in gens:
            t = by_name.get(g.teacher)
            if t is None:
                continue
            total += float(self._price(t, g.prompt_tokens or 0, g.completion_tokens or 0, g.seconds))
        return total

    def describe(self) -> dict:
        """Per teacher: the fitted token models and the source of the estimate (summary.json)."""
        return {
            m.name: {
                "source": m.source,
                "tokens_in": [round(m.tokens_in.intercept, 3), round(m.tokens_in.slope, 5)],
                "tokens_out": [round(m.tokens_out.intercept, 3), round(m.tokens_out.slope, 5)],
                "seconds_per_token": m.seconds_per_token,
            }
            for m in self.models
        }


def _priced(t: TeacherConfig) -> bool:
    return any(
        p is not None for p in (t.price_input_per_million, t.price_output_per_million, t.price_per_second)
    )


def batch_price_factor(t: TeacherConfig) -> float | None:
    """The share of its prices a teacher pays through batch files (``batch.price_factor``), or
    None when it does not generate in batches."""
    batched = getattr(t, "batched", None)
    settings = batched() if batched is not None else None
    return None if settings is None else settings.price_factor


def price_of(t: TeacherConfig, tokens_in, tokens_out, seconds=0.0, batch: bool | None = None):
    """The price of responses of ``t`` in its prices' currency (the one pricing formula of
    persyn: ``tokens_in · price_input_per_million / 1e6 + tokens_out ·
    price_output_per_million / 1e6 + seconds · price_per_second``, times the batch price factor
    for responses made through batch files); floats or NumPy arrays of one shape. None when
    ``t`` has no price (``CostModel`` then counts tokens).

    ``batch``: None prices them as ``t`` makes them (``batch_price_factor`` when it generates in
    batches); False at the synchronous price; True at the batch price (``t``'s factor, else the
    Batch API's half price).
    """
    if not _priced(t):
        return None
    price = (
        tokens_in * (t.price_input_per_million or 0.0) / 1e6
        + tokens_out * (t.price_output_per_million or 0.0) / 1e6
        + seconds * (t.price_per_second or 0.0)
    )
    factor = batch_price_factor(t)
    if batch is True:
        return price * (DEFAULT_BATCH_FACTOR if factor is None else factor)
    if batch is None and factor is not None:
        return price * factor
    return price


#: The Batch API's price as a share of the synchronous one (half).
DEFAULT_BATCH_FACTOR = 0.5
