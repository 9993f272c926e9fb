# What every sweep script of this recipe (run_table1.sh, run_ksweep.sh, run_moe_ablation.sh,
# run_salf_ablation.sh, run_upstreams.sh) starts its options with: the run names (names.sh) and the options
# it hands to every run.sh it calls, or keeps for itself (--exproot, --dry_run). A sweep declares its own
# options after these and adds its own path options to path_options; any option it does not declare goes
# to every run.sh (passthrough), but for those it sets per run (refuse_passthrough).
. "${recipe}/local/names.sh"

bvcc_root=                 # BVCC folder (DATA/wav, DATA/sets)
somos_root=                # SOMOS folder (audios/, training_files/); optional
device=cuda                # cuda or cpu
exproot="${recipe}/exp"    # where experiment folders and the sweep's table or plot go
dry_run=false              # print the commands instead of running them
path_options="bvcc_root somos_root exproot"
passthrough=()             # any other option goes to every run.sh
