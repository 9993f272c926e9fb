"""Compact predictors: distillation into small students on unlabelled degraded speech, and structured
pruning of a predictor's fine-tuned upstream and head (recipe: ``egs/compress/run.sh``).

Modules, one job each:

- :mod:`.degrade`      clean unlabelled speech -> degraded speech, seeded, from YAML, every clip recorded
- :mod:`.pseudo_label` a teacher predictor file scores the degraded pool (resumable) -> a data list
- :mod:`.train_student` the student family (:mod:`distilmos.models.student`) trained on pseudo-labels
                       (optionally mixed with labels) and exported as predictor files
- :mod:`.prune`        data-driven structured pruning of a predictor file's upstream (groups: :mod:`.structure`)
                       and DistilMOS head (groups: :mod:`.head`), with fine-tuning
- :mod:`.evaluate`     predictor files on in-domain and out-of-domain test lists: metrics, speed, parameters
"""
