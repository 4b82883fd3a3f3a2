#!/usr/bin/env bash
# GPU check: on one GPU, in under 8 minutes,
#   1. make a few paper-preset synthetic patients (DICOM + NIfTI), generated in parallel;
#   2. plan them with the paper's plans (apply-plans --preset paper) and preprocess;
#   3. train vanilla nnU-Net 3d_fullres (nnUNetTrainer_envSchedule) and ours (ThrombusCascadeTrainer: 3d_lowres,
#      export-next-stage, 3d_cascade_fullres) at the paper configuration (patch 96x160x160, features 32-320,
#      batch 2, SGD Nesterov 0.99 lr 0.01, mirroring) for a few hundred iterations each, the same for both;
#   4. time one paper-size case end to end: `nnunet_thrombus predict` from its DICOM folders (every output
#      written, registration cache off), and vanilla `nnUNetv2_predict` on the same case's NIfTI;
#   5. print the ratios, and write them to OUT/gpu_check.md and OUT/gpu_check.json.
#
# Usage:  bash benchmarks/gpu_check.sh [--out DIR] [--cases N] [--epochs E] [--iters I] [--preset P]
#                                      [--plan-preset P] [--device D] [--jobs J]
# Defaults: --out gpu_check_out --cases 3 --epochs 1 --iters 200 --preset paper --plan-preset paper --device cuda.
# Needs this package installed with a CUDA build of torch (pip install -e .), and nothing else (no network).
# The summary splits the wall time into setup (data generation, planning, preprocessing) and the check itself
# (three trainings and two predictions), which is what the 8-minute target is about.
# CPU dry run of the same steps (minutes, proves the script's logic, says nothing about GPU speed):
#   bash benchmarks/gpu_check.sh --out gpu_dry --preset tiny --plan-preset cpu --device cpu --iters 2
#
# Fold 0 trains on all cases but one and validates on that one (a splits_final.json written here, since nnU-Net's
# five-fold split needs five cases and a paper-preset case takes 1-2 minutes to generate). Training times are
# nnU-Net's own "Epoch time" lines (the first epoch includes cuDNN autotuning; with --epochs 2 or more the last
# epoch is used) divided by the iterations; torch.compile is off for both models (nnUNet_compile=f), so the
# ratio compares the networks, not compile luck.
set -euo pipefail

OUT=gpu_check_out; CASES=3; EPOCHS=1; ITERS=200; VAL_ITERS=5; PRESET=paper; PLAN_PRESET=paper; DEVICE=cuda
JOBS=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
usage() { sed -n '2,24p' "$0"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --preset) PRESET=$2; shift 2 ;;
    --plan-preset) PLAN_PRESET=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in CASES EPOCHS ITERS JOBS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check.sh: --${v,,} must be a positive integer, got '${!v}'" >&2; exit 2; }
done
(( CASES >= 2 )) || { echo "gpu_check.sh: --cases must be >= 2 (one to train, one to validate)" >&2; exit 2; }
case "$PRESET" in tiny|demo|paper) ;; *) echo "gpu_check.sh: --preset must be tiny, demo or paper" >&2; exit 2 ;; esac
case "$PLAN_PRESET" in cpu|paper|auto) ;; *) echo "gpu_check.sh: --plan-preset must be cpu, paper or auto" >&2; exit 2 ;; esac
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check.sh: --device must be cuda or cpu" >&2; exit 2 ;; esac
if [[ -e "$OUT" && -n "$(ls -A "$OUT" 2>/dev/null)" ]]; then
  echo "gpu_check.sh: output folder $OUT is not empty; choose another --out or remove it" >&2; exit 2
fi
PY=${PYTHON:-python}
command -v nnunet_thrombus >/dev/null || { echo "gpu_check.sh: nnunet_thrombus not on PATH (activate the venv)" >&2; exit 2; }
if [[ "$DEVICE" == cuda ]]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu_check.sh: --device cuda but torch sees no GPU (use --device cpu for a dry run)" >&2; exit 2; }
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$OUT/work; mkdir -p "$W/gen" "$W/nnUNet_raw" "$W/nnUNet_preprocessed" "$W/nnUNet_results" "$W/logs"
DS_ID=518; DS=Dataset518_GpuCheck
eval "$(nnunet_thrombus env --raw "$W/nnUNet_raw" --preprocessed "$W/nnUNet_preprocessed" --results "$W/nnUNet_results")"
export nnUNet_compile=f nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-$JOBS} nnUNet_def_n_proc=${nnUNet_def_n_proc:-$JOBS}
export THROMBUS_NUM_EPOCHS=$EPOCHS THROMBUS_ITERS_PER_EPOCH=$ITERS THROMBUS_VAL_ITERS=$VAL_ITERS \
       THROMBUS_SAVE_EVERY=$EPOCHS THROMBUS_OPTIMIZER=sgd THROMBUS_NO_MIRRORING=0 THROMBUS_SEED=0
T0=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step() { echo "[gpu_check $(since "$T0") s] $*"; }
# run a command, log it, and record its wall seconds under a name in $W/times.tsv
timed() {
  local name=$1; shift
  local t; t=$(now)
  echo "\$ $*" >> "$W/logs/$name.log"
  if ! "$@" >> "$W/logs/$name.log" 2>&1; then
    echo "gpu_check.sh: step '$name' failed; last lines of $W/logs/$name.log:" >&2
    tail -n 30 "$W/logs/$name.log" >&2; exit 1
  fi
  printf '%s\t%s\n' "$name" "$(since "$t")" >> "$W/times.tsv"
  step "$name done in $(since "$t") s"
}

step "settings: $CASES $PRESET-preset cases, plans $PLAN_PRESET, device $DEVICE, $EPOCHS epoch(s) x $ITERS iterations per stage, $JOBS worker processes"

# 1. data: one `synth` process per case (different seeds), then one nnU-Net dataset with CASES training cases
gen_case() { nnunet_thrombus synth -o "$W/gen/c$1" -n 1 -t 0 -s "$((1000 + $1))" -p "$PRESET" -f dicom nifti -q; }
export -f gen_case; export W PRESET
timed generate bash -c "seq 0 $((CASES - 1)) | xargs -P $JOBS -I{} bash -c 'gen_case {}'"
timed assemble $PY - "$W" "$CASES" "$DS" <<'EOF'
import json, shutil, sys
from pathlib import Path
w, n, ds = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dst = w / "nnUNet_raw" / ds
for sub in ("imagesTr", "labelsTr"):
    (dst / sub).mkdir(parents=True, exist_ok=True)
dataset_json, names = None, []
for i in range(n):
    src = next((w / "gen" / f"c{i}" / "nnUNet_raw").glob("Dataset*"))
    case = f"GPU_{i:04d}"
    for f in sorted((src / "imagesTr").glob("*.nii.gz")):
        shutil.copy(f, dst / "imagesTr" / f"{case}{f.name[-12:]}")  # keep the channel suffix _000k.nii.gz
    shutil.copy(next((src / "labelsTr").glob("*.nii.gz")), dst / "labelsTr" / f"{case}.nii.gz")
    (w / "dicom").mkdir(exist_ok=True)
    dicom = next((w / "gen" / f"c{i}" / "raw_dicom").iterdir())
    shutil.copytree(dicom, w / "dicom" / case)
    dataset_json = dataset_json or json.loads((src / "dataset.json").read_text())
    names.append(case)
dataset_json["numTraining"] = n
(dst / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
print(f"{n} cases in {dst}: {names}")
EOF
ls "$W/nnUNet_raw/$DS/imagesTr" | head -4

# 2. plans (nnU-Net's fingerprint and planner, then ours) and preprocessing; a one-case validation split
timed fingerprint nnUNetv2_extract_fingerprint -d $DS_ID -np "$JOBS" --verify_dataset_integrity
timed plan_experiment nnUNetv2_plan_experiment -d $DS_ID
timed apply_plans nnunet_thrombus apply-plans -d $DS_ID --preset "$PLAN_PRESET" -pl ThrombusPlans
timed preprocess nnUNetv2_preprocess -d $DS_ID -plans_name ThrombusPlans -c 3d_fullres 3d_lowres -np "$JOBS" "$JOBS"
$PY - "$W/nnUNet_preprocessed/$DS" "$CASES" <<'EOF'
import json, sys
from pathlib import Path
n = int(sys.argv[2])
cases = [f"GPU_{i:04d}" for i in range(n)]
# fold 0: train on all but the last case, validate on it (folds 1-4 repeat it so the file has nnU-Net's shape)
split = [{"train": cases[:-1], "val": cases[-1:]}] * 5
(Path(sys.argv[1]) / "splits_final.json").write_text(json.dumps(split, indent=2))
EOF

# 3. training, the same schedule for both (THROMBUS_* above)
timed train_vanilla nnUNetv2_train $DS_ID 3d_fullres 0 -tr nnUNetTrainer_envSchedule -p ThrombusPlans -device "$DEVICE"
timed train_ours_coarse nnUNetv2_train $DS_ID 3d_lowres 0 -tr ThrombusCascadeTrainer -p ThrombusPlans -device "$DEVICE"
timed export_next_stage nnunet_thrombus export-next-stage -d $DS_ID -tr ThrombusCascadeTrainer -p ThrombusPlans -device "$DEVICE"
timed train_ours_fine nnUNetv2_train $DS_ID 3d_cascade_fullres 0 -tr ThrombusCascadeTrainer -p ThrombusPlans -device "$DEVICE"

# 4. one paper-size case end to end: ours from DICOM (every output), vanilla nnU-Net on the NIfTI of that case
LAST=GPU_$(printf '%04d' $((CASES - 1)))
mkdir -p "$W/vanilla_in"; cp "$W/nnUNet_raw/$DS/imagesTr/$LAST"_*.nii.gz "$W/vanilla_in/"
timed predict_ours nnunet_thrombus predict -i "$W/dicom/$LAST" -o "$OUT/predict_ours" -d $DS_ID -f 0 \
  -device "$DEVICE" --no-cache --dicom-seg --save-probabilities
timed predict_vanilla nnUNetv2_predict -i "$W/vanilla_in" -o "$OUT/predict_vanilla" -d $DS_ID -c 3d_fullres \
  -tr nnUNetTrainer_envSchedule -p ThrombusPlans -f 0 -device "$DEVICE"

# 5. ratios
$PY - "$W" "$OUT" "$DS" "$ITERS" "$EPOCHS" "$PRESET" "$PLAN_PRESET" "$DEVICE" "$(since "$T0")" <<'EOF'
import json, platform, re, sys
from pathlib import Path
w, out, ds, iters, epochs, preset, plan_preset, device, total = sys.argv[1:10]
w, out, iters, epochs = Path(w), Path(out), int(iters), int(epochs)
times = dict(line.split("\t") for line in (w / "times.tsv").read_text().splitlines())
times = {k: float(v) for k, v in times.items()}

def s_per_iter(folder):
    log = sorted((w / "nnUNet_results" / ds / folder / "fold_0").glob("training_log_*.txt"))[-1]
    ep = [float(x) for x in re.findall(r"Epoch time:\s*([0-9.]+)\s*s", log.read_text())]
    return ep[-1] / iters, ep

van, van_ep = s_per_iter("nnUNetTrainer_envSchedule__ThrombusPlans__3d_fullres")
coarse, coarse_ep = s_per_iter("ThrombusCascadeTrainer__ThrombusPlans__3d_lowres")
fine, fine_ep = s_per_iter("ThrombusCascadeTrainer__ThrombusPlans__3d_cascade_fullres")
ours_train = times["train_ours_coarse"] + times["export_next_stage"] + times["train_ours_fine"]
setup_steps = ("generate", "assemble", "fingerprint", "plan_experiment", "apply_plans", "preprocess")
setup = sum(v for k, v in times.items() if k in setup_steps)
check = sum(v for k, v in times.items() if k not in setup_steps)
gpu = "cpu"
if device == "cuda":
    import torch
    gpu = torch.cuda.get_device_name(0)
res = {"device": gpu, "preset": preset, "plan_preset": plan_preset, "iterations_per_stage": iters * epochs,
       "s_per_iteration": {"vanilla_3d_fullres": van, "ours_coarse": coarse, "ours_fine": fine},
       "epoch_seconds": {"vanilla_3d_fullres": van_ep, "ours_coarse": coarse_ep, "ours_fine": fine_ep},
       "wall_s": times, "whole_script_s": float(total), "setup_s": setup, "check_s": check,
       "ratios": {"fine_s_per_iteration_vs_vanilla": fine / van,
                  "ours_s_per_iteration_both_stages_vs_vanilla": (coarse + fine) / van,
                  "training_wall_ours_vs_vanilla": ours_train / times["train_vanilla"],
                  "predict_case_ours_dicom_vs_vanilla_nifti": times["predict_ours"] / times["predict_vanilla"]}}
r = res["ratios"]
lines = [f"# GPU check ({gpu}; {preset}-preset data, {plan_preset} plans; {iters * epochs} iterations per stage)", "",
         "| quantity | vanilla 3d_fullres | ours | ratio ours / vanilla |", "| --- | --- | --- | --- |",
         f"| training s/iteration, fine stage | {van:.3f} | {fine:.3f} | {r['fine_s_per_iteration_vs_vanilla']:.2f} |",
         f"| training s/iteration, both stages | {van:.3f} | {coarse + fine:.3f} | "
         f"{r['ours_s_per_iteration_both_stages_vs_vanilla']:.2f} |",
         f"| training wall s (processes; ours: coarse + export + fine) | {times['train_vanilla']:.1f} | {ours_train:.1f} | "
         f"{r['training_wall_ours_vs_vanilla']:.2f} |",
         f"| one case end to end, s (ours: predict from DICOM, every output; vanilla: nnUNetv2_predict on NIfTI) | "
         f"{times['predict_vanilla']:.1f} | {times['predict_ours']:.1f} | "
         f"{r['predict_case_ours_dicom_vs_vanilla_nifti']:.2f} |", "",
         f"Whole script {float(total) / 60:.1f} min on {platform.node()}: setup (data, plans, preprocessing) "
         f"{setup / 60:.1f} min, check (three trainings, two predictions) {check / 60:.1f} min; step wall times (s): "
         + ", ".join(f"{k} {v:.1f}" for k, v in times.items()) + "."]
(out / "gpu_check.json").write_text(json.dumps(res, indent=2))
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
step "done: $OUT/gpu_check.md"
