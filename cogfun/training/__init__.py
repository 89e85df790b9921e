"""Training pieces of cogfun: loss, random inpaint masks, the training loop and checkpoints.

Follows the training recipe of the reference implementation (VideoX-Fun, `scripts/cogvideox_fun/train.py`),
summarised in docs/design.md section 1.5.
"""
