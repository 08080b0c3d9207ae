"""Cache keys of teacher responses: what changes a response is in the key, nothing else.

What a teacher's settings add is theirs to say (``persyn.engines.base.TeacherSettings``: every
field not marked ``NOT_IN_KEY``, and what the engine's model adds, e.g. its weights'
fingerprint); this module puts the parts together.
"""

from __future__ import annotations

from persyn.config.teachers import TeacherConfig
from persyn.core.hashing import stable_hash
from persyn.core.records import Prompt


def generation_key(teacher: TeacherConfig, prompt: Prompt, seed: int) -> str:
    """Cache key of one teacher response: hashes the teacher's name and every setting that
    changes its output (``teacher.key_settings()``: model and its weights' fingerprint,
    templates, decoding, stop strings) and the prompt (``teacher.key_payload``: its text, the
    seed when sampling; for ``reference`` the reference solution and answer), with a chat
    prompt's whole conversation."""
    payload = teacher.key_payload(prompt, seed)
    if prompt.messages is not None:  # every turn, roles included (text prompts keep their keys)
        payload.append(prompt.messages)
    return stable_hash(["generation/v1", teacher.key_settings(), payload])
