"""Image quality metrics: pure functions per image pair or set, plus thin stateful classes."""
