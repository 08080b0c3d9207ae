"""``dtype`` on the model slots: ``auto`` picks bf16 only where the hardware runs it natively
(flags faked both ways), the resolved dtype enters every cache key (fp32 and bf16 results never
mix), and a bf16 slot loads bf16 weights."""

import pytest

from persyn.core import hardware

AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
OLD = frozenset({"avx2", "fma", "avx512f"})  # AVX-512 without its bf16 extension


def test_auto_is_bf16_only_where_the_flags_say_so():
    assert hardware.resolve_dtype("auto", "cpu", AMX) == (
        "bfloat16",
        "auto: the CPU has AMX-BF16 (amx_bf16 in /proc/cpuinfo)",
    )
    assert hardware.resolve_dtype("auto", "cpu", ZEN4)[0] == "bfloat16"
    dtype, why = hardware.resolve_dtype("auto", "cpu", OLD)
    assert dtype == "float32" and "neither amx_bf16 nor avx512_bf16" in why
    assert hardware.resolve_dtype("auto", "cpu", frozenset())[0] == "float32"
    assert hardware.resolve_dtype("auto", "cuda", OLD, cuda_bf16=True)[0] == "bfloat16"
    assert hardware.resolve_dtype("auto", "cuda", AMX, cuda_bf16=False)[0] == "float32"
    # an explicit dtype is kept whatever the hardware
    assert hardware.resolve_dtype("bfloat16", "cpu", OLD) == ("bfloat16", "set in the config")
    assert hardware.resolve_dtype("float32", "cpu", AMX) == ("float32", "set in the config")
    with pytest.raises(ValueError, match="got 'fp16'"):
        hardware.resolve_dtype("fp16")


def test_the_resolved_dtype_is_in_every_cache_key(tiny_models):
    from persyn.config import QualityConfig, StudentConfig, make_teacher
    from persyn.core.records import Prompt
    from persyn.models.loading import model_dtype
    from persyn.runtime.keys import generation_key
    from persyn.scoring.learnability import LearnabilityScorer
    from persyn.scoring.quality import RewardModelScorer

    p = Prompt("p", "What is 2 + 3?", "5")
    teacher = make_teacher(name="t", engine="transformers", model=tiny_models["chat"])
    key = {d: generation_key(teacher.model_copy(update={"dtype": d}), p, 0) for d in hardware.DTYPE_SETTINGS}
    assert key["float32"] != key["bfloat16"]
    assert key["auto"] == key[model_dtype("auto")[0]]  # auto is keyed as what it resolves to
    # fp32 adds nothing to the key: responses stored before dtypes existed stay current
    ref = make_teacher(name="r", engine="reference")
    assert generation_key(ref.model_copy(update={"dtype": "bfloat16"}), p, 0) == generation_key(ref, p, 0)

    st = StudentConfig(model=tiny_models["chat"])
    lk = {d: LearnabilityScorer(st.model_copy(update={"dtype": d})).key for d in hardware.DTYPE_SETTINGS}
    assert lk["float32"] != lk["bfloat16"] and lk["auto"] == lk[model_dtype("auto")[0]]
    q = QualityConfig(kind="reward_model", model=tiny_models["reward"])
    qk = {d: RewardModelScorer(q.model_copy(update={"dtype": d})).key for d in ("float32", "bfloat16")}
    assert qk["float32"] != qk["bfloat16"]

    from persyn.training.sft_config import SFTSettings

    assert SFTSettings(dtype="auto").key_fields()["dtype"] == model_dtype("auto")[0]
    assert SFTSettings(dtype="float32").key_fields() != SFTSettings(dtype="bfloat16").key_fields()


def test_a_bf16_slot_loads_bf16_weights_and_scores_close_to_fp32(tiny_models):
    import torch

    from persyn.config import StudentConfig
    from persyn.core.records import ScoreItem
    from persyn.models.loading import is_loaded, load_causal_lm, release_model
    from persyn.scoring.learnability import LearnabilityScorer

    ref = tiny_models["chat2"]
    m16, m32 = load_causal_lm(ref, dtype="bfloat16"), load_causal_lm(ref, dtype="float32")
    assert m16 is not m32 and next(m16.parameters()).dtype == torch.bfloat16
    assert next(m32.parameters()).dtype == torch.float32
    assert is_loaded(ref, "bfloat16") and is_loaded(ref, "float32")
    items = [ScoreItem("a", "What is 2 + 3?", "2 + 3 = 5\n#### 5"), ScoreItem("b", "Name a colour.", "Blue.")]
    score = {
        d: {
            k: v
            for rows in LearnabilityScorer(StudentConfig(model=ref, dtype=d)).score(items)
            for k, v, _ in rows
        }
        for d in ("float32", "bfloat16")
    }
    for k in ("a", "b"):  # bf16 weights, fp32 log-softmax: close, not equal
        assert score["bfloat16"][k] != score["float32"][k]
        assert score["bfloat16"][k] == pytest.approx(score["float32"][k], rel=0.05)
    release_model(ref)
    assert not is_loaded(ref, "bfloat16") and not is_loaded(ref, "float32")


def test_the_run_summary_records_each_slots_dtype_and_why(tiny_models, tmp_path):
    from conftest import tiny_config

    from persyn.config import parse_config
    from persyn.stages.export import precision_table

    cfg = tiny_config(tiny_models, tmp_path)
    cfg["teachers"][0]["dtype"] = "bfloat16"
    cfg["student"]["dtype"] = "float32"
    table = precision_table(parse_config(cfg))
    assert table["teacher:a"] == {"dtype": "bfloat16", "reason": "set in the config"}
    assert table["student"] == {"dtype": "float32", "reason": "set in the config"}
    assert table["teacher:b"]["reason"].startswith("auto: ") and "teacher:reference" not in table
