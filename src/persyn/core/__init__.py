"""The core every stage may import: the records passed between stages, the typed run summary,
cache-key hashing, atomic I/O, the plug-in tables and the errors. It imports nothing else of
persyn's, so every dependency on it points one way."""
