"""Training under s3prl: the plugin (this toolkit's registrations into s3prl's namespaces), the runner
behind ``run_downstream.py``, the resumable training loop (:mod:`.loop`) with its atomic checkpoints,
preemption and early stopping, the learning-rate schedules s3prl lacks (OneCycleLR, MoE-MOS's stages), and
:class:`~.expert_base.MOSExpert`, what every expert of ``downstream/`` shares with s3prl's runner.

Layer: imports the foundation, :mod:`distilmos.data`, :mod:`distilmos.eval`, :mod:`distilmos.models`,
:mod:`distilmos.upstream`, :mod:`distilmos.corpora` and :mod:`distilmos.standins`; never its siblings
:mod:`distilmos.predictor` and :mod:`distilmos.pretrain`, nor anything above them.
"""
