"""Model code of cogfun: the inpaint transformer, positional embeddings, text encoder and presets."""
