"""Detection, tracking, encoding and matching: the per-frame recognition building blocks."""
