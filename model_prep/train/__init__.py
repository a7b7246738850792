"""LIMA's fine-tuning recipe: config, data, end-of-turn token, residual dropout, batching, the loop, dev set and
checkpoint choice."""
