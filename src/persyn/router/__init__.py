"""The Bradley–Terry coefficient router (PerSyn Eq. 3): train, predict, evaluate."""
