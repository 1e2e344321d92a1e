"""DNN level: LUT-exact INT8 inference with approximate multipliers, fine-tuning, sensitivity and
per-layer / per-filter multiplier assignment under an accuracy budget."""
