"""Fine-tuning with TRL: the student by SFT (``training.sft``), a generator by DPO
(``training.dpo``), each beside its settings (``training.sft_config``, ``training.dpo_config``)
on one shared base (``training.base``)."""
