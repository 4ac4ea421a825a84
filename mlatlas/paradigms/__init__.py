"""Section 3, paradigms: transfer (9), self-supervised (10), foundation models (11), multi-modal
learning (12)."""
