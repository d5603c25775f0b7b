"""Graph-embedding recommenders (multi-view walks and skip-gram)."""
