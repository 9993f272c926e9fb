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
- :mod:`.cli`          ``distilmos-compress STEP`` (``python -m distilmos.compress``): the steps as one command

Layer: stands on the predictor (its inputs and outputs are predictor files) and may import every layer below
it (foundation, data, eval, models, upstream, corpora, standins, predictor, train, pretrain); only
:mod:`upstream_tokens` is above it.
"""
