"""SR-GNN (Wu et al., AAAI 2019) and its variants. Models arrive in a later change."""
