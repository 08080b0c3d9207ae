"""Fine-tuning a student and evaluating it on the experiment's splits: ``Split`` (the held-out
``test`` prompts, and a ``validation`` split for choices made by measurement) and
``StudentTrainer``, which caches every fine-tune and evaluation by content."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from persyn.config import StudentConfig
from persyn.core.errors import InputError
from persyn.core.hashing import stable_hash
from persyn.core.io import write_atomic
from persyn.core.records import Prompt
from persyn.experiment.config import EvalConfig
from persyn.training.sft_config import SFTSettings


@dataclass
class Split:
    """An evaluation split: its settings, the prompts kept, its key part and how many prompts
    were dropped (training or test prompts)."""

    spec: EvalConfig
    prompts: list[Prompt]
    id: str
    excluded: int


def truncated_share(records: list[dict]) -> float:
    """The share of evaluated answers cut by the evaluation's ``max_new_tokens``
    (``finish_reason`` "length"): an answer cut before its final line is scored wrong whatever
    the student learnt."""
    return sum(r.get("finish_reason") == "length" for r in records) / max(1, len(records))


def _summary(path: Path) -> dict:
    # An evaluation record's summary with its truncated share (older records lack the field).
    record = json.loads(path.read_text())
    return record["summary"] | {"truncated": truncated_share(record["records"])}


def _check_split(prompts: list, spec: EvalConfig, section: str) -> None:
    """Refuse a split whose prompts cannot be checked the way ``spec`` says: no reference answer
    to check against, or (``check: ifeval``) no IFEval instructions.

    Raises:
        InputError: names the section, the count and the first such prompt, and the fix.
    """
    from persyn.scoring.tasks import IFEVAL, task_of

    def instructed(p) -> bool:
        task = task_of(p.metadata)
        return task is not None and task[0] == IFEVAL

    where = f"{section} (prompts.source {spec.prompts.source!r})"
    if spec.checked_by_instructions:
        bare = [p for p in prompts if not instructed(p)]
        if bare:
            raise InputError(
                f"{where}: check: ifeval, but {len(bare)} of {len(prompts)} prompts carry no IFEval "
                f"instructions ('instruction_id_list' and 'kwargs'; first: {bare[0].text[:80]!r})"
            )
        return
    unanswered = [p for p in prompts if p.answer is None]
    if unanswered:
        hint = (
            " They carry IFEval instructions: set check: ifeval to score them by those."
            if instructed(unanswered[0])
            else ""
        )
        raise InputError(
            f"{where}: {len(unanswered)} of {len(prompts)} prompts have no reference answer to check "
            f"against (first: {unanswered[0].text[:80]!r}).{hint}"
        )


def response_lengths(dataset: Path, model: str) -> list[int]:
    """Each response of ``dataset`` in ``model``'s tokens (its tokenizer, no special tokens),
    plus one for the end-of-turn token a generation must also write to stop; in line order.

    Raises:
        InputError: the dataset cannot be read (``training.sft.read_training_pairs``).
    """
    from persyn.models.loading import load_tokenizer
    from persyn.tokenization import encode_text
    from persyn.training.sft import read_training_pairs

    tok = load_tokenizer(model)
    return [1 + len(encode_text(tok, ex[1])) for ex in read_training_pairs(dataset)]


class StudentTrainer:
    """Fine-tunes students and evaluates them, each result stored once under ``out``
    (``evals/KEY.json``; model directories under ``models/``, deleted after evaluation unless
    ``keep_models``). ``sft``: the experiment's SFT settings; ``log`` takes progress lines."""

    def __init__(self, out: Path, sft: SFTSettings, keep_models: bool, log=print):
        self.out = out
        self.sft = sft
        self.keep_models = keep_models
        self.log = log
        self.splits: dict[str, Split] = {}  # "test", and "validation" when configured
        self.all_train: list[str] = []
        self.lengths: dict[str, list[int]] = {}  # dataset hash -> response lengths (student tokens)
        self.reported: set[tuple[str, str]] = set()  # (dataset hash, split) logged over the budget

    def check_budget(self, st: StudentConfig, dataset: Path, dataset_hash: str, split: str) -> int:
        """Refuse an evaluation budget that would cut what the student was taught: the split's
        ``max_new_tokens`` must be at least the dataset's longest response
        (``response_lengths``) plus the split's ``length_margin``. With the split's
        ``length_check: report`` a smaller budget is logged instead (how many responses exceed
        it: their copies are cut, and counted in each evaluation's truncated share). Returns the
        longest response.

        Raises:
            ConfigError: the budget is too small and ``length_check`` is ``refuse``, naming both
                figures and the dataset.
        """
        from persyn.core.errors import ConfigError

        if dataset_hash not in self.lengths:
            self.lengths[dataset_hash] = response_lengths(dataset, st.model)
        lengths, spec = self.lengths[dataset_hash], self.splits[split].spec
        longest = max(lengths)
        if spec.max_new_tokens < longest + spec.length_margin:
            field = "eval" if split == "test" else split
            if spec.length_check == "report":
                if (dataset_hash, split) in self.reported:  # logged once, not before every fine-tune
                    return longest
                self.reported.add((dataset_hash, split))
                over = sum(n > spec.max_new_tokens for n in lengths)
                self.log(
                    f"budget · {dataset}: {over} of {len(lengths)} responses are longer than "
                    f"{field}.max_new_tokens {spec.max_new_tokens} (longest {longest} tokens, length_margin "
                    f"{spec.length_margin}); {field}.length_check is report: copies of them are cut and "
                    "counted as truncated"
                )
                return longest
            raise ConfigError(
                f"{field}.max_new_tokens is {spec.max_new_tokens}, but {dataset} has a response of "
                f"{longest} tokens ({st.model}'s tokenizer, end of turn included); with "
                f"{field}.length_margin {spec.length_margin} the evaluation needs at least "
                f"{longest + spec.length_margin} new tokens, or answers that copy the training "
                f"data are scored on truncation (or set {field}.length_check: report to evaluate at "
                "this budget and count the cut answers)"
            )
        return longest

    @staticmethod
    def _student_id(st: StudentConfig) -> list:
        # Everything about the student that changes a fine-tune or an evaluation.
        from persyn.models.fingerprint import model_fingerprint

        return [st.model, model_fingerprint(st.model), st.prompt_template]

    def _load_split(
        self, spec: EvalConfig, drop: set[str], always_drop: bool, section: str = "eval"
    ) -> Split:
        """Load an evaluation split (the config's ``section``: ``eval`` or ``validation``); its
        prompts in ``drop`` (normalised texts: training or test prompts) are left out when
        ``always_drop`` or ``spec.exclude_training_prompts``. Its ``id`` (the settings and the
        exact prompts, not the file's path) is part of every evaluation key made on it.

        Raises:
            InputError: a split checked against reference answers with prompts that have none,
                or checked by IFEval instructions with prompts that carry none (naming the
                section, the count and the first prompt), or no prompt left.
        """
        from persyn.evaluate import normalize_prompt
        from persyn.prompts import load_prompts

        if spec.benchmark == "ifeval":
            from persyn.evaluate_ifeval import ifeval_prompt_set

            loaded = ifeval_prompt_set(spec.size)
        else:  # instructions are the check of an IFEval-format set: no reference answer needed
            loaded = load_prompts(spec.prompts, spec.seed, require_answer=not spec.checked_by_instructions)[0]
            _check_split(loaded, spec, section)
        prompts = loaded
        if always_drop or spec.exclude_training_prompts:
            prompts = [p for p in loaded if normalize_prompt(p.text) not in drop]
        if not prompts:
            raise InputError(f"{section}: all {len(loaded)} prompts are training or test prompts")
        from persyn.models.loading import dtype_key

        # length_margin and length_check only check the budget: they change no answer, so they stay out of the id
        settings = spec.model_dump(mode="json", exclude={"prompts", "dtype", "length_margin", "length_check"})
        for added in ("benchmark", "size"):  # unset, absent: the keys made before they existed hold
            if settings.get(added) is None:
                settings.pop(added, None)
        if not spec.check_given():  # unset or its implied value: the same split, the same key
            settings.pop("check", None)
        # the resolved dtype (fp32 adds nothing: keys made before dtypes existed stay valid)
        split_id = stable_hash(
            [settings, [(p.id, p.text, p.answer) for p in prompts], *dtype_key(spec.dtype)]
        )
        return Split(spec, prompts, split_id, len(loaded) - len(prompts))

    def prepare(self, all_train: list[str], test: EvalConfig, validation: EvalConfig | None) -> None:
        """Load the held-out test prompts (without those any strategy trains on, when
        ``eval.exclude_training_prompts``) and the ``validation`` split (without any training
        or test prompt, always)."""
        from persyn.evaluate import normalize_prompt

        self.all_train = all_train
        train = {normalize_prompt(t) for t in all_train}
        self.splits["test"] = t = self._load_split(test, train, False, "eval")
        if validation is not None:
            drop = train | {normalize_prompt(p.text) for p in t.prompts}
            self.splits["validation"] = val = self._load_split(validation, drop, True, "validation")
            self.log(
                f"validation: {len(val.prompts)} prompts ({val.excluded} dropped: training or test prompts)"
            )

    def _evaluate(self, model: str, key: str, train_prompts: list[str], template: str, split: str) -> dict:
        from persyn.evaluate import evaluate, write_eval

        path = self.out / "evals" / f"{key}.json"
        if path.exists():
            return _summary(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sp = self.splits[split]
        run = evaluate
        if sp.spec.checked_by_instructions:
            from persyn.evaluate_ifeval import evaluate_ifeval as run
        res = run(
            model,
            sp.prompts,
            train_prompts=train_prompts,
            batch_size=sp.spec.batch_size,
            max_new_tokens=sp.spec.max_new_tokens,
            prompt_template=template,
            dtype=sp.spec.dtype,
        )
        write_eval(res, path)
        return _summary(path)

    def evaluate_untrained(self, st: StudentConfig, split: str = "test") -> dict:
        """The untouched student's evaluation on ``split`` (cached), with its ``eval_key``."""
        key = f"student-{stable_hash(['student', self._student_id(st), self.splits[split].id])}"
        return self._evaluate(st.model, key, self.all_train, st.prompt_template, split) | {"eval_key": key}

    def _key(self, st: StudentConfig, seed: int, dataset_hash: str, split: str, sft_over: dict | None):
        # A fine-tune's evaluation key: dataset content, SFT settings, student, seed and split.
        settings = SFTSettings.model_validate({**self.sft.model_dump(), **(sft_over or {}), "seed": seed})
        return settings, stable_hash(
            [dataset_hash, settings.key_fields(), self._student_id(st), self.splits[split].id]
        )

    def is_done(self, st: StudentConfig, seed: int, dataset_hash: str, split: str = "test") -> bool:
        """Whether this fine-tune's evaluation on ``split`` is already recorded (nothing to run)."""
        return (self.out / "evals" / f"{self._key(st, seed, dataset_hash, split, None)[1]}.json").exists()

    def train_and_evaluate(
        self,
        st: StudentConfig,
        dataset: Path,
        seed: int,
        dataset_hash: str,
        split: str = "test",
        sft_over: dict | None = None,
        keep: bool = False,
    ) -> dict:
        """Fine-tune student ``st`` on ``dataset`` with ``seed`` (and the ``sft`` settings
        updated by ``sft_over``) and evaluate it on ``split`` (``test`` or ``validation``),
        cached by dataset content, SFT settings, student, seed and split. Returns the
        evaluation summary with ``train`` (the fine-tune's record) and ``eval_key``
        (``evals/EVAL_KEY.json`` holds the per-prompt records). ``keep``: keep the model for an
        evaluation on another split (a validation sweep's point that the main run may train
        again); ``remove_models`` deletes what is left."""
        from persyn.evaluate import training_prompts
        from persyn.training.sft import sft

        settings, key = self._key(st, seed, dataset_hash, split, sft_over)
        done = self.out / "evals" / f"{key}.json"
        if done.exists():
            return _summary(done) | {"train": json.loads(done.read_text()).get("train"), "eval_key": key}
        # The fine-tune does not depend on the split: its directory is keyed without it.
        self.check_budget(st, dataset, dataset_hash, split)
        model_dir = (
            self.out / "models" / stable_hash([dataset_hash, settings.key_fields(), self._student_id(st)])
        )
        info_path = model_dir / "persyn_sft.json"
        train = json.loads(info_path.read_text()) if info_path.exists() else None
        if train is None:
            train = sft(dataset, st.model, model_dir, settings, prompt_template=st.prompt_template)
        summary = self._evaluate(
            str(model_dir), key, training_prompts(dataset) + self.all_train, st.prompt_template, split
        )
        record = json.loads(done.read_text())
        # n_truncated / n_dropped: training lines cut at (or dropped by) sft.max_length
        keep = ("seconds", "steps", "final_loss", "n_examples", "n_truncated", "n_dropped")
        record["train"] = {k: train.get(k) for k in keep}
        write_atomic(done, json.dumps(record, indent=2) + "\n")
        if not (self.keep_models or keep):
            shutil.rmtree(model_dir, ignore_errors=True)
        return summary | {"train": record["train"], "eval_key": key}

    def remove_models(self) -> None:
        """Delete the fine-tuned models kept for another split (unless ``keep_models``)."""
        if not self.keep_models:
            shutil.rmtree(self.out / "models", ignore_errors=True)
