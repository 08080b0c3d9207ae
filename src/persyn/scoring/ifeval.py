"""``quality.kind: ifeval``: r_q is the share of the prompt's IFEval instructions a response
follows (Zhou et al. 2023, arXiv 2311.07911), checked by Google's rule checkers
(``persyn.ifeval``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from persyn.core.errors import InputError
from persyn.core.hashing import stable_hash
from persyn.core.records import ScoreItem
from persyn.core.redaction import redact
from persyn.core.settings import StrictModel
from persyn.ifeval import DIST, VERSION, follows
from persyn.scoring.quality import QualityScorer
from persyn.scoring.tasks import IFEVAL


class IFEvalSettings(StrictModel):
    """``ifeval``'s own setting: ``loose``, IFEval's loose check (a response passes an
    instruction when it, or it without its first line, last line, both, or markdown asterisks,
    does)."""

    #: Left out of dumps when off, so the configs and result keys of before stay as they were.
    DUMP_ONLY_WHEN_SET: ClassVar[tuple[str, ...]] = ("loose",)

    loose: bool = False


class IFEvalScorer(QualityScorer):
    """r_q = the share of the prompt's instructions the response follows (1.0: all, which is
    what passes ``verify``), strictly as IFEval checks them, or by IFEval's loose check
    (``quality.loose``: any of the response, without its first line, its last line, both, or
    markdown asterisks, passing).

    A prompt's instructions are its record's IFEval fields ``instruction_id_list`` and
    ``kwargs``, kept in the prompt's metadata and handed in as ``tasks``
    (``scoring.tasks.task_of``). A response to a prompt without them, or with instructions the
    checkers refuse (an unknown id, kwargs that do not fit), is a failed item whose note names
    the prompt and the reason (the scorer contract: a row with None, not an exception). A
    missing package raises ``MissingAssetError``.
    """

    Settings = IFEvalSettings

    def __init__(self, tasks: dict[str, tuple[str, dict]] | None = None, loose: bool = False):
        """``tasks``: item key → (task, its metadata) as ``scoring.tasks.task_of`` gives them;
        the ``ifeval`` ones are the items' instructions."""
        self.instructions = {k: meta for k, (task, meta) in (tasks or {}).items() if task == IFEVAL}
        self.loose = loose

    @property
    def key(self) -> str:
        """The checkers' package and version, and strict or loose."""
        return stable_hash(["quality/ifeval/v1", f"{DIST}=={VERSION}", "loose" if self.loose else "strict"])

    @classmethod
    def of(cls, cfg, answers, notes, pool, tasks) -> IFEvalScorer:
        return cls(tasks, cfg.loose)

    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        out: list[tuple[str, float | None, str | None]] = []
        for it in items:
            meta = self.instructions.get(it.key)
            if meta is None:
                out.append(
                    (
                        it.key,
                        None,
                        f"prompt {redact(it.prompt)!r} has no IFEval instructions: quality.kind "
                        "'ifeval' needs the fields 'instruction_id_list' and 'kwargs' in its record",
                    )
                )
                continue
            ids = meta["instruction_id_list"]
            try:
                followed = follows(it.response, ids, meta["kwargs"], it.prompt, loose=self.loose)
            except InputError as exc:
                out.append((it.key, None, f"prompt {redact(it.prompt)!r}: {exc}"))
                continue
            missed = [i for i, ok in zip(ids, followed, strict=True) if not ok]
            note = (
                f"followed {len(ids) - len(missed)} of {len(ids)}; not {', '.join(missed)}"
                if missed
                else None
            )
            out.append((it.key, (len(ids) - len(missed)) / len(ids), note))
        yield out
