"""Near-duplicate filters for synthetic prompts.

- ROUGE-L F-measure (Lin 2004), via Google's ``rouge-score`` package: Self-Instruct (Wang et al.
  2023, arXiv 2212.10560) and Montessori-Instruct drop a candidate whose ROUGE-L with any
  instruction kept so far exceeds 0.7.
- Embedding cosine: a candidate whose cosine to a kept one exceeds a threshold (paraphrases
  that share few words).
"""

from __future__ import annotations

import numpy as np

from persyn.core.deps import require


def _rouge():
    require("rouge_score", "prompt synthesis", "pip install 'persyn[synth]'", "rouge-score")
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


class RougeDedup:
    """Keeps texts whose ROUGE-L F-measure with every text kept so far is at most
    ``threshold``; ``seen`` (e.g. the seed prompts) count as kept.

    Raises:
        MissingAssetError: ``rouge-score`` is not installed.
    """

    def __init__(self, threshold: float = 0.7, seen: list[str] | None = None):
        self.threshold = threshold
        self.scorer = _rouge()
        self.kept: list[str] = list(seen or [])

    def max_rouge(self, text: str) -> float:
        """The largest ROUGE-L F-measure of ``text`` against the kept texts (0 when none)."""
        return max((self.scorer.score(k, text)["rougeL"].fmeasure for k in self.kept), default=0.0)

    def add(self, text: str) -> bool:
        """Keep ``text`` unless it is a near-duplicate; True when kept."""
        if self.max_rouge(text) > self.threshold:
            return False
        self.kept.append(text)
        return True


def cosine_duplicates(emb: np.ndarray, threshold: float, seen: np.ndarray | None = None) -> np.ndarray:
    """Greedy in order: boolean ``[n]``, True where row i of ``emb`` (L2-normalised, ``[n, d]``)
    has cosine > ``threshold`` to an earlier kept row or to any row of ``seen`` ``[m, d]``."""
    emb = np.asarray(emb, dtype=np.float32)
    dup = np.zeros(len(emb), dtype=bool)
    kept: list[np.ndarray] = [] if seen is None else list(np.asarray(seen, dtype=np.float32))
    for i, v in enumerate(emb):
        if kept and float(np.max(np.stack(kept) @ v)) > threshold:
            dup[i] = True
        else:
            kept.append(v)
    return dup
