"""Model references and models: the built-in aliases for the packaged offline models
(``aliases``), GGUF files and their conversion (``gguf``), loading with a shared in-memory cache
(``loading``), and what a model contributes to cache keys: its weights' fingerprint
(``fingerprint``) and its BOS policy (``bos``). Nothing here downloads."""
