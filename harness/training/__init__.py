"""The representation-training kit shared by every training-time defense.

``layers``       find decoder layers, scale layer choices to a model's depth, capture hidden states
                 and stop the forward pass above the highest layer a loss needs
``lora``         attach LoRA adapters through peft, with the symmetry broken on purpose
``examples``     tokenised chat examples with the masks the losses need
``losses``       rerouting, retain, cross-entropy, per-sample weights, coefficient schedules
``trainer``      the loop: AdamW, accumulation, checkpoints and resume, loss log, NaN stop, accelerate
``trainsets``    the training sets, decontaminated against every benchmark and cached per model
``lora_defense`` the base of LoRA defenses: one config class, and data, adapters, training, merge
``rerouting``    representation rerouting's objective, config and search space, for its defenses
"""
