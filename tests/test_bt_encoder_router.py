"""The ``bt-encoder`` kind (the paper's router) through fit, save, load, fingerprint and scores,
and ``router.freeze_encoder``, on the tiny BERT-like encoder."""

import numpy as np
import torch
from transformers import AutoModel

from persyn.config import RouterConfig
from persyn.router.base import RouterExample, load_router, router_class
from persyn.scoring.combine import pair_labels

TEACHERS = ["a", "b", "c"]


def examples(n=12, seed=0):
    """Prompts whose best teacher depends on the text: 'add' prompts suit a, the others b."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        add = i % 2 == 0
        r = [0.9, 0.1, 0.5] if add else [0.1, 0.9, 0.5]
        r = [float(v + rng.uniform(-0.05, 0.05)) for v in r]
        text = f"add {i} and {i + 1}" if add else f"spell the word {i}"
        out.append(RouterExample(text, pair_labels(r), r, None))
    return out


def config(tiny_models, **kw):
    return RouterConfig(kind="bt-encoder", encoder=tiny_models["encoder"], epochs=2, batch_size=4, **kw)


def test_bt_encoder_saves_loads_and_fingerprints_what_it_learned(tiny_models, tmp_path):
    ex = examples()
    cls = router_class("bt-encoder")
    router = cls.fit(config(tiny_models), TEACHERS, ex, seed=0)
    texts = [e.text for e in ex[:4]]
    scores = router.scores(texts)
    assert scores.shape == (4, 3) and np.isfinite(scores).all()
    assert list(router.route(texts)) == list(scores.argmax(-1))

    router.save(tmp_path / "r")
    again = load_router(tmp_path / "r")
    assert type(again) is cls and again.teachers == TEACHERS
    np.testing.assert_allclose(again.scores(texts), scores, rtol=1e-5, atol=1e-6)

    router.save(tmp_path / "copy")
    fp = cls.fingerprint(tmp_path / "r")
    assert cls.fingerprint(tmp_path / "copy") == fp
    cls.fit(config(tiny_models), TEACHERS, ex, seed=1).save(tmp_path / "other")
    assert cls.fingerprint(tmp_path / "other") != fp


def _encoder_weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_freeze_encoder_trains_only_the_head(tiny_models):
    original = _encoder_weights(AutoModel.from_pretrained(tiny_models["encoder"]))
    ex = examples()
    cls = router_class("bt-encoder")

    frozen = cls.fit(config(tiny_models, freeze_encoder=True), TEACHERS, ex, seed=0)
    after = _encoder_weights(frozen.net.encoder)
    assert all(torch.equal(after[k], original[k]) for k in original)

    tuned = cls.fit(config(tiny_models, encoder_lr=1e-3), TEACHERS, ex, seed=0)
    after = _encoder_weights(tuned.net.encoder)
    assert any(not torch.equal(after[k], original[k]) for k in original)
    # the head learned in both: the two routers give different coefficients
    texts = [e.text for e in ex[:4]]
    assert not np.allclose(frozen.scores(texts), tuned.scores(texts))
