"""Bundled models, each a submission file like any user's: `msabench run --model NAME`."""
