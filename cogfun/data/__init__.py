"""Data for cogfun: video IO, the toy world of captioned clips, datasets and preparation."""
