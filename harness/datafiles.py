"""Data files that both training and benchmarks read: the refusal-direction splits, the OR-Bench retain set.

The train splits are training data (the training kit, the refusal direction); the validation
splits are validation benchmarks, never trained on; the OR-Bench retain set is both (a fifth of
it is held out as a validation benchmark, which the training sets then drop). Keeping them here
lets a benchmark plugin name them without importing the training kit.
"""

from harness.data import DataFile

HARMFUL_TRAIN = DataFile("refusal_direction_splits", "refusal_direction_splits/splits/harmful_train.json",
                         "8f5c0eac0efd2a7f99084bbe8d0de2c465e31b1997184783c917969d9de9ece1")
HARMLESS_TRAIN = DataFile("refusal_direction_splits", "refusal_direction_splits/splits/harmless_train.json",
                          "86623b1f8a25aa35df153fc97a556dbcebb6a7c881538ae43ee479ca17f2e002")
HARMFUL_VAL = DataFile("refusal_direction_splits", "refusal_direction_splits/splits/harmful_val.json",
                       "305f1d1e6dfa6c50a32d24a18ef815f42b5441eb83e6d7767d242107162fd9f4")
HARMLESS_VAL = DataFile("refusal_direction_splits", "refusal_direction_splits/splits/harmless_val.json",
                        "772010758e7d771ef4c7e5e4acdfd7598dcece1a6f383f20d382f640913a2a4d")
ORBENCH_RETAIN = DataFile("x_boundary", "x_boundary/train/ORbench_retain_set.json",
                          "425fa1d439229fda8089dc6b95bf511c8c36b38b774f77203faaaba1a4313768")
