# What every learning check of this recipe (learning_check.sh, moe_learning_check.sh, salf_learning_check.sh,
# listener_learning_check.sh) ends its options with: the work folder, the seed and the tiny upstream, which
# the checks share (one generated corpus, upstream and data lists when --workdir is the same), and demo_setup
# (local/setup.sh), which the check calls with the size "learning" once its options are parsed.
. "${here}/local/setup.sh"

workdir="${here}/learning_out"  # everything the check writes (ignored by git)
seed=0                     # corpus, upstream and training seed
upstream=pretrained        # pretrained: the shipped tiny HuBERT; random: a random tiny WavLM
path_options="workdir"
