"""Run: config-driven training (`train`), evaluation (`evaluate`), checkpoints (`checkpoint`) and a
run's loss plot (`plots`)."""
