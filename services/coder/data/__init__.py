"""CAMEO codebook and action lexicon (YAML), a package so that wheels ship them."""
