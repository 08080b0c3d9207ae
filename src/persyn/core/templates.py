"""The one default prompt format of a base (no chat template) student or model."""

#: ``StudentConfig.prompt_template``'s default, and the default of ``persyn sft`` /
#: ``persyn evaluate`` and of ``train.sft`` / ``evaluate``: ``{prompt}`` is replaced by the
#: prompt's text.
DEFAULT_PROMPT_TEMPLATE = "Question: {prompt}\nAnswer: "
