#!/usr/bin/env bash
# Compact predictors: distil a trained predictor into small students on unlabelled degraded speech, prune
# its fine-tuned upstream and its head, and chart size against accuracy, in-domain and out-of-domain
# (Stahl & Gamper, 2025, in this toolkit).
#
#   ./run.sh --teacher model.pt --clean_dir /corpora/clean_speech --datadir data \
#       --roots ../mosbench/conf/roots.yaml                                        # real data
#   ./run.sh --quick true                                                          # offline demo, CPU
#
# Stages: 1 data + teacher (--teacher predictor file, or --teacher_exp experiment dir exported; with neither,
#         the demo: generated corpus, the pretrained tiny HuBERT of egs/demo/pretrained, a no_token DistilMOS
#         trained by egs/bvcc/run.sh),
#         2 degrade the clean pool, 3 pseudo-label it with the teacher, 4 students of every size (distilled)
#         and the same students on labels only, 5 pruning levels of the teacher's upstream and DistilMOS head,
#         6 evaluation on BVCC test (in-domain) and out-of-domain on every MOS-Bench test set of --roots
#         (prepared by egs/mosbench/local/benchmark.py; demo: generated stand-ins and the generated SOMOS;
#         without --roots: <datadir>/somos/test.csv when there): <workdir>/eval/table.md and srcc_vs_params.png.
# A finished stage leaves <workdir>/.done.<stage>; rerunning skips it (pseudo-labelling resumes mid-way).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "${here}/path.sh"
. "${here}/../utils/lib.sh"

stage=1                  # first stage to run
stop_stage=6             # last stage to run
workdir="${here}/compress_out"  # everything the recipe writes (ignored by git)
teacher=                 # a predictor file (distilmos-predict export; any expert), hf:// file or peer:// predictor
teacher_exp=             # or an experiment dir: its best-states-val.ckpt is exported
datadir=                 # data lists: <datadir>/bvcc/{train,val,test}.csv, <datadir>/somos/test.csv (default: the demo's)
clean_dir=               # clean unlabelled speech (folder or list); default: generated (demo)
pool_factor=5            # demo: degraded pool size as a multiple of the labelled train set
sizes="xs s m l dmos"    # student sizes (distilmos/models/student.py; dmos: configured like the released Distill-MOS)
labelled_ratio=0.0       # labelled share of each distilled student's batch (0: pseudo-labels only)
student_steps=           # student training steps (default: conf/student.yaml; --quick: 250)
fractions="0.75,0.5,0.25,0.1,0.05,0.02"  # pruning targets (fractions of the upstream's and the head's parameters)
prune_steps=             # fine-tuning steps per pruning level (default: conf/prune.yaml; --quick: 200)
teacher_steps=400        # demo teacher training steps
teacher_upstream=pretrained  # demo teacher's upstream: pretrained (the shipped tiny HuBERT) or random (a tiny WavLM)
roots=                   # MOS-Bench roots file (YAML corpus: folder; distilmos-prep --list): out-of-domain test sets
mosbench_corpora="singmos nisqa tmhint_qi vmc23 bc19 vcc2018 bc23 svcc23 tcd_voip ttsds2"  # demo: generated stand-ins
mosbench_utts=8          # demo: stand-in utterances per system and split
quick=false              # small settings for the offline demo (minutes on a CPU)
seed=0                   # every seed of the recipe
jobs=2                   # students trained side by side (one thread each)
threads="${OMP_NUM_THREADS:-2}"  # torch threads of the teacher's training, pseudo-labelling and pruning
path_options="workdir teacher_exp datadir clean_dir roots"
file_options="teacher"   # made absolute when a file: hf://... and peer://... are references
. "${here}/../utils/parse_options.sh"
workdir="$(workdir_of "${workdir}")"
stamp_dir="${workdir}"
student_args=()
prune_args=()
if [ "${quick}" = true ]; then
    student_steps="${student_steps:-250}"
    prune_steps="${prune_steps:-200}"
    student_args+=(--batch_size 8 --crop_seconds 2.0 --eval_every 50)
    prune_args+=(--importance_batches 8 --eval_every 20 --crop_seconds 2.0)
fi
[ -n "${student_steps}" ] && student_args+=(--steps "${student_steps}")
[ -n "${prune_steps}" ] && prune_args+=(--finetune_steps "${prune_steps}")
demo=false
[ -z "${teacher}" ] && [ -z "${teacher_exp}" ] && demo=true
datadir="${datadir:-${workdir}/data}"
teacher_file="${teacher:-${workdir}/teacher.pt}"

if todo 1; then
    if [ "${demo}" = true ]; then
        log 1 "demo: generated corpus, ${teacher_upstream} tiny upstream, no_token DistilMOS teacher (${teacher_steps} steps)"
        [ -f "${workdir}/corpus/record.json" ] || distilmos-standins bvcc_somos \
            --out_dir "${workdir}/corpus" --seed "${seed}"
        read -r -a upstream_args <<< "$("${here}/../utils/tiny_upstream.sh" "${teacher_upstream}" "${workdir}" "${seed}")"
        OMP_NUM_THREADS="${threads}" "${here}/../bvcc/run.sh" --bvcc_root "${workdir}/corpus/bvcc" --somos_root "${workdir}/corpus/somos" \
            --datadir "${datadir}" "${upstream_args[@]}" \
            --variant no_token --expdir "${workdir}/teacher_exp" --device cpu --total_steps "${teacher_steps}" \
            --eval_step 100 --batch_size 8 --num_workers 0 --seed "${seed}" --stop_stage 3 \
            --overrides "config.optimizer.lr=5.0e-4,,config.downstream_expert.datarc.eval_batch_size=16"
        teacher_exp="${workdir}/teacher_exp"
    fi
    if [ -z "${teacher}" ]; then
        log 1 "exporting ${teacher_exp}/best-states-val.ckpt -> ${teacher_file}"
        distilmos-predict export -e "${teacher_exp}/best-states-val.ckpt" -o "${teacher_file}"
    fi
    done_stage 1
fi

if todo 2; then
    clean="${clean_dir}"
    if [ -z "${clean}" ]; then
        n_train=$(( $(wc -l < "${datadir}/bvcc/train.csv") - 1 ))
        # copies per clean clip come from conf/degrade.yaml (2): enough clean clips for pool_factor x train
        n_clean=$(( (n_train * pool_factor + 1) / 2 ))
        log 2 "demo: ${n_clean} generated clean clips (labelled train set: ${n_train})"
        python "${here}/local/make_clean_pool.py" --out_dir "${workdir}/clean" --n_clips "${n_clean}" --seed "${seed}"
        clean="${workdir}/clean"
    fi
    log 2 "degrading ${clean} -> ${workdir}/pool"
    distilmos-compress degrade --config "${here}/conf/degrade.yaml" --inputs "${clean}" \
        --out_dir "${workdir}/pool" --seed "${seed}"
    done_stage 2
fi

if todo 3; then
    log 3 "pseudo-labelling the pool with ${teacher_file}"
    OMP_NUM_THREADS="${threads}" distilmos-compress pseudo-label --teacher "${teacher_file}" \
        --pool "${workdir}/pool/pool.csv" --out "${workdir}/pseudo.csv"
    done_stage 3
fi

if todo 4; then
    log 4 "students (${sizes}): distilled and labelled-only, ${jobs} at a time"
    mkdir -p "${workdir}/students" "${workdir}/logs"
    pids=()
    for size in ${sizes}; do
        for kind in student baseline; do
            out="${workdir}/students/${kind}_${size}.pt"
            [ -f "${out}" ] && continue
            if [ "${kind}" = student ]; then
                data=(--pseudo "${workdir}/pseudo.csv")
                [ "${labelled_ratio}" != 0.0 ] && [ "${labelled_ratio}" != 0 ] && \
                    data+=(--labelled "${datadir}/bvcc/train.csv" --labelled_ratio "${labelled_ratio}")
            else
                data=(--labelled "${datadir}/bvcc/train.csv")
            fi
            OMP_NUM_THREADS=1 distilmos-compress train-student --config "${here}/conf/student.yaml" \
                --size "${size}" "${data[@]}" --val "${datadir}/bvcc/val.csv" --seed "${seed}" \
                "${student_args[@]}" --out "${out}" > "${workdir}/logs/${kind}_${size}.log" 2>&1 &
            pids+=($!)
            if [ "${#pids[@]}" -ge "${jobs}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
        done
    done
    for pid in "${pids[@]}"; do wait "${pid}"; done
    for size in ${sizes}; do for kind in student baseline; do
        [ -f "${workdir}/students/${kind}_${size}.pt" ] || { echo "${kind} ${size} failed; see ${workdir}/logs/${kind}_${size}.log" >&2; exit 1; }
        tail -n 1 "${workdir}/logs/${kind}_${size}.log"
    done; done
    done_stage 4
fi

if todo 5 && [[ "${teacher_file}" == peer://* ]]; then
    log 5 "skipped: ${teacher_file} is another package's predictor, with no fine-tuned SSL upstream to prune"
elif todo 5; then
    log 5 "pruning the teacher's upstream and head to ${fractions}"
    OMP_NUM_THREADS="${threads}" distilmos-compress prune --teacher "${teacher_file}" \
        --train "${datadir}/bvcc/train.csv" \
        --val "${datadir}/bvcc/val.csv" --fractions "${fractions}" --config "${here}/conf/prune.yaml" \
        "${prune_args[@]}" --out_dir "${workdir}/pruned"
    done_stage 5
fi

if todo 6; then
    ood=()
    ood_what="none"
    if [ -z "${roots}" ] && [ "${demo}" = true ]; then
        roots="${workdir}/mosbench/roots.yaml"
        if [ ! -f "${roots}" ]; then
            log 6 "demo: generated MOS-Bench stand-ins (${mosbench_corpora}) and the generated SOMOS -> ${roots}"
            rm -rf "${workdir}/mosbench/corpora"
            distilmos-standins mosbench --out_dir "${workdir}/mosbench/corpora" --seed "${seed}" \
                --corpora "${mosbench_corpora}" --utts "${mosbench_utts}"
            {
                echo "somos: ${workdir}/corpus/somos"
                for corpus in ${mosbench_corpora}; do
                    [ "${corpus}" = bc19 ] && echo "bc19: corpora/bc19/ood" || echo "${corpus}: corpora/${corpus}"
                done
            } > "${roots}.tmp"
            mv "${roots}.tmp" "${roots}"
        fi
    fi
    if [ -n "${roots}" ]; then
        log 6 "out-of-domain test sets: the MOS-Bench corpora of ${roots}"
        distilmos-prep --roots "${roots}" --out_dir "${workdir}/mosbench/data" --manifest "${workdir}/mosbench/sets.json"
        ood=(--mosbench "${workdir}/mosbench/sets.json")
        ood_what="the test sets of ${roots}"
    elif [ -f "${datadir}/somos/test.csv" ]; then
        ood=(--ood "somos_test=${datadir}/somos/test.csv")
        ood_what="SOMOS test"
    fi
    log 6 "evaluation: BVCC test (in-domain), ${ood_what} (out-of-domain)"
    models=("teacher=${teacher_file}")
    for size in ${sizes}; do
        models+=("student_${size}=${workdir}/students/student_${size}.pt"
                 "baseline_${size}=${workdir}/students/baseline_${size}.pt")
    done
    for file in "${workdir}"/pruned/pruned_*.pt; do
        [ -f "${file}" ] && models+=("$(basename "${file}" .pt)=${file}")
    done
    distilmos-compress evaluate --models "${models[@]}" --tests "bvcc_test=${datadir}/bvcc/test.csv" \
        "${ood[@]}" --out_dir "${workdir}/eval"
    echo "table: ${workdir}/eval/table.md  plot: ${workdir}/eval/srcc_vs_params.png"
    done_stage 6
fi
echo "done in $(elapsed) s"
