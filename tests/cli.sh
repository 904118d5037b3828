#!/bin/sh
# Command-line tests of the example programs: bad input gives a clear message and a non-zero exit,
# and nothing already written is lost or half-replaced. Usage: sh tests/cli.sh BUILD_DIR
# Prints one line per check and "N passed, N failed" last.
B=${1:-build}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1"; }

# idx FILE TYPE-RANK DIM... : writes an IDX header (uint8) followed by COUNT random bytes
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
idx() {
    f=$1; shift
    count=1
    { printf '\000\000\010'; printf "\\$(printf %03o $#)"; for d in "$@"; do be32 "$d"; count=$((count * d)); done; } > "$f"
    head -c "$count" /dev/urandom >> "$f"
}
labels() { { printf '\000\000\010\001'; be32 "$2"; i=0; while [ $i -lt "$2" ]; do printf "\\$(printf %03o $((i % 10)))"; i=$((i + 1)); done; } > "$1"; }

# expect NAME EXIT-CODE PATTERN COMMAND...: the command exits with that code and prints PATTERN
expect() {
    name=$1; code=$2; pattern=$3; shift 3
    "$@" > "$T/log" 2>&1; rc=$?
    if [ $rc -eq "$code" ] && grep -q -- "$pattern" "$T/log"; then ok "$name"
    else ko "$name (exit $rc, wanted $code and '$pattern'; output: $(head -c 300 "$T/log" | tr '\n' ' '))"; fi
}

mkdir -p "$T/good" "$T/big" "$T/mismatch" "$T/out"
idx "$T/good/train-images-idx3-ubyte" 128 28 28;   labels "$T/good/train-labels-idx1-ubyte" 128
idx "$T/good/t10k-images-idx3-ubyte" 50 28 28;     labels "$T/good/t10k-labels-idx1-ubyte" 50
idx "$T/big/train-images-idx3-ubyte" 128 32 32;    labels "$T/big/train-labels-idx1-ubyte" 128
idx "$T/mismatch/train-images-idx3-ubyte" 128 28 28; labels "$T/mismatch/train-labels-idx1-ubyte" 100
P="$B/poison_mnist --trials 1 --steps 2 --warmup 5 --batch 64 --checkpoint $T/ckpt"   # the test sets hold 128 images

expect poison_rejects_default_batch_above_the_set 1 "batch 256 must be in \[2, 128 samples\]" \
    $B/poison_mnist --trials 1 --steps 2 --warmup 5 --checkpoint $T/ckpt --data "$T/good" --out "$T/out"
expect poison_rejects_eps_zero 2 "eps" $P --data "$T/good" --out "$T/out" --eps 0
LONG="$T/$(printf '%01100d' 0)"   # a folder name longer than the programs' file name buffers: refused, not cut short
expect poison_rejects_an_out_name_too_long 2 "the value of --out is longer than 990 characters" $P --data "$T/good" --out "$LONG"
expect poison_rejects_a_data_folder_name_too_long 2 "the value of --data is longer" $P --data "$LONG" --out "$T/out"
expect combine_rejects_a_folder_name_too_long 2 "combine_idx: the value of --clean is longer" \
    $B/combine_idx --clean "$LONG" --release "$T/good" --release "$T/good" --out "$T/out"
expect eval_rejects_a_generator_list_too_long 2 "eval_mnist: the value of --generator is longer" \
    $B/eval_mnist --train "$T/good" --test "$T/good" --generator "$LONG"
expect poison_rejects_eps_above_one 2 "eps" $P --data "$T/good" --out "$T/out" --eps 1.5
expect poison_rejects_boost_below_minus_one 2 "boost must be in \[-1, 100\]" $P --data "$T/good" --out "$T/out" --boost -1.5
expect poison_rejects_nan_boost 2 "boost" $P --data "$T/good" --out "$T/out" --boost nan
expect poison_rejects_negative_warmup 1 "warmup_steps" $P --data "$T/good" --out "$T/out" --warmup -1
expect poison_rejects_unknown_reference 1 "unknown classifier" $P --data "$T/good" --out "$T/out" --references mlp,resnet
expect poison_rejects_bad_pairing 2 "pairing" $P --data "$T/good" --out "$T/out" --pairing random
expect poison_rejects_bad_lr_schedule 2 "lr-schedule" $P --data "$T/good" --out "$T/out" --lr-schedule linear
expect poison_rejects_unknown_generator 2 "generator is autoencoder or mnist, not \"unet\"" $P --data "$T/good" --out "$T/out" --generator unet
expect poison_rejects_bad_objective 2 "objective" $P --data "$T/good" --out "$T/out" --objective cosine
expect poison_rejects_bad_victim_optimizer 2 "victim-optimizer is sgd, adam or alternate, not \"rmsprop\"" $P --data "$T/good" --out "$T/out" --victim-optimizer rmsprop
expect poison_rejects_adam_victim_with_momentum 1 "Adam victim" $P --data "$T/good" --out "$T/out" --victim-optimizer adam --victim-momentum 0.9
expect poison_rejects_bad_untargeted_loss 2 "untargeted-loss" $P --data "$T/good" --out "$T/out" --untargeted-loss hinge
expect poison_rejects_complement_when_targeted 1 "untargeted_loss" $P --data "$T/good" --out "$T/out" --untargeted-loss complement --targeted
expect poison_rejects_negative_noise_weight 1 "noise_weight" $P --data "$T/good" --out "$T/out" --noise-weight -1
expect poison_rejects_negative_soft_targets 1 "warmup_temperature" $P --data "$T/good" --out "$T/out" --soft-targets -1
expect poison_rejects_zero_adam_victim_lr 1 "victim_adam_lr" $P --data "$T/good" --out "$T/out" --victim-optimizer adam --victim-adam-lr 0
expect poison_rejects_zero_reference_epochs 1 "warmup_epochs" $P --data "$T/good" --out "$T/out" --ref-epochs 0
expect poison_rejects_negative_shortcut 1 "shortcut" $P --data "$T/good" --out "$T/out" --shortcut -1
expect poison_rejects_zero_generator_width 1 "base in" $P --data "$T/good" --out "$T/out" --gen-width 0
expect poison_rejects_negative_shift 1 "warmup_shift" $P --data "$T/good" --out "$T/out" --shift -1
expect poison_rejects_shift_of_the_whole_image 1 "warmup_shift" $P --data "$T/good" --out "$T/out" --shift 28
expect poison_rejects_unknown_trial_victim 1 "unknown classifier" $P --data "$T/good" --out "$T/out" --trial-victims lenet,resnet
expect poison_rejects_trial_victims_with_a_pool 1 "victims = 1" $P --data "$T/good" --out "$T/out" --trial-victims lenet --victims 2
expect poison_rejects_negative_anchor 1 "anchor" $P --data "$T/good" --out "$T/out" --anchor -1
expect poison_rejects_steps_not_a_number 2 "steps needs a whole number, not \"x\"" $P --data "$T/good" --out "$T/out" --steps x
expect poison_rejects_trials_with_a_unit 2 "trials needs a whole number, not \"3k\"" $P --data "$T/good" --out "$T/out" --trials 3k
expect poison_rejects_negative_seed 2 "seed needs a non-negative whole number, not \"-1\"" $P --data "$T/good" --out "$T/out" --seed -1
expect poison_rejects_eps_not_a_number 2 "eps needs a finite number, not \"0.3x\"" $P --data "$T/good" --out "$T/out" --eps 0.3x
expect poison_rejects_infinite_anchor 2 "anchor needs a finite number, not \"inf\"" $P --data "$T/good" --out "$T/out" --anchor inf
expect poison_rejects_negative_threads 2 "threads must be >= 1" $P --data "$T/good" --out "$T/out" --threads -2
expect poison_rejects_missing_value 2 "gen-lr needs a value" $P --data "$T/good" --out "$T/out" --gen-lr
expect train_rejects_epochs_not_a_number 2 "epochs needs a whole number, not \"two\"" $B/train_mnist --data "$T/good" --epochs two
expect poison_rejects_label_shift_zero 2 "label-shift" $P --data "$T/good" --out "$T/out" --label-shift 0
expect poison_rejects_label_shift_ten 2 "label-shift" $P --data "$T/good" --out "$T/out" --label-shift 10
expect poison_rejects_unknown_option 2 "unknown option" $P --data "$T/good" --bogus
expect poison_rejects_32x32_images 1 "28x28" $P --data "$T/big" --out "$T/out"
expect poison_rejects_count_mismatch 1 "128 images" $P --data "$T/mismatch" --out "$T/out"
expect poison_rejects_missing_data 1 "cannot open" $P --data "$T/nowhere" --out "$T/out"
expect poison_rejects_pairing_not_ten_classes 2 "ten classes w(0),...,w(9), not \"1,2,3\"" $P --data "$T/good" --out "$T/out" --pairing 1,2,3
expect poison_rejects_pairing_with_a_fixed_point 1 "sends a class to itself" $P --data "$T/good" --out "$T/out" --pairing 0,2,3,4,5,6,7,8,9,1
expect poison_rejects_given_pairing_when_targeted 2 "for the non-targeted mode" $P --data "$T/good" --out "$T/out" --targeted --pairing 9,2,3,4,5,6,7,8,1,0
mkdir -p "$T/given"   # its own output and checkpoint: the checks below resume $T/ckpt
expect poison_runs_a_given_pairing 0 "0->9 1->2 .* 8->1 9->0" $P --data "$T/good" --out "$T/given" --checkpoint "$T/given/ckpt" --pairing 9,2,3,4,5,6,7,8,1,0
expect poison_runs_on_good_data 0 "wrote" $P --data "$T/good" --out "$T/out"
PR="$B/probe_mnist --victims softmax"
expect probe_rejects_two_modes 2 "usage" $PR --reach --poisoned "$T/out"
expect probe_rejects_unknown_classifier 2 "unknown classifier" $B/probe_mnist --victims nonet --reach
expect probe_rejects_bad_eps 2 "eps" $PR --reach --eps 0
expect probe_rejects_missing_data 1 "cannot open" $PR --data "$T/nowhere" --reach
expect probe_rejects_32x32_images 1 "28x28" $PR --data "$T/big" --reach
expect probe_reads_a_poison 0 "read as 0..9" $PR --data "$T/good" --poisoned "$T/out"
expect probe_finds_reachable_classes 0 "read as each class" $PR --data "$T/good" --reach
mkdir -p "$T/narrow" "$T/shifted" "$T/aligned" "$T/adam" "$T/complement" "$T/soft"
expect poison_runs_a_label_shift 0 "y -> y+9" $P --data "$T/good" --out "$T/shifted" --label-shift 9 --fresh --checkpoint "$T/shifted.ckpt"
expect poison_runs_a_narrow_generator 0 "wrote" $P --data "$T/good" --out "$T/narrow" --gen-width 4 --fresh --checkpoint "$T/narrow.ckpt"
expect poison_runs_the_align_objective 0 "wrote" $P --data "$T/good" --out "$T/aligned" --objective align --fresh --checkpoint "$T/aligned.ckpt"
expect poison_runs_complement_loss_and_inward_clamp 0 "wrote" $P --data "$T/good" --out "$T/complement" --untargeted-loss complement --clamp-inward --fresh --checkpoint "$T/complement.ckpt"
expect poison_runs_soft_targets 0 "wrote" $P --data "$T/good" --out "$T/soft" --soft-targets 4 --noise-weight 0.5 --fresh --checkpoint "$T/soft.ckpt"
expect poison_runs_an_adam_victim 0 "wrote" $P --data "$T/good" --out "$T/adam" --victim-optimizer alternate --trials 2 --fresh --checkpoint "$T/adam.ckpt"
expect poison_resumes_completed_checkpoint 0 "0 trial(s) to go (1 done)" $P --data "$T/good" --out "$T/out"
cp "$T/ckpt" "$T/ckpt.before"
expect poison_refuses_checkpoint_of_other_references 1 "reference ensemble" $P --data "$T/good" --out "$T/out" --references none
expect poison_refuses_checkpoint_of_other_settings 1 "made with batch = 64; this attack has batch = 32" $P --data "$T/good" --out "$T/out" --batch 32
# the defaults, read back from the settings the checkpoints recorded: no shifted views, and anchor 2 for a label-specific run
expect poison_does_not_shift_views_by_default 1 "made with warmup_shift = 0; this attack has warmup_shift = 1" $P --data "$T/good" --out "$T/out" --shift 1
expect poison_targeted_anchors_at_two_by_default 1 "made with anchor = 2; this attack has anchor = 1" $P --data "$T/good" --out "$T/shifted" --anchor 1 --label-shift 9 --checkpoint "$T/shifted.ckpt"
expect poison_refuses_checkpoint_of_other_trial_victims 1 "victim architectures" $P --data "$T/good" --out "$T/out" --trial-victims mlp
expect poison_refuses_checkpoint_of_other_generator 1 "another kind or architecture" $P --data "$T/good" --out "$T/out" --generator mnist
if cmp -s "$T/ckpt" "$T/ckpt.before"; then ok checkpoint_untouched_after_refusal; else ko checkpoint_untouched_after_refusal; fi
cp "$T/ckpt" "$T/newset.ckpt"; mkdir -p "$T/newset"
expect poison_resumes_under_new_settings_when_asked 0 "1 trial(s) to go (1 done)" $P --data "$T/good" --out "$T/newset" --checkpoint "$T/newset.ckpt" --batch 32 --trials 2 --new-settings
cp "$T/out/train-images-idx3-ubyte" "$T/images.before"
touch "$T/afile"
expect poison_reports_unwritable_output 1 "cannot create" $P --data "$T/good" --out "$T/afile"
expect poison_checks_outputs_before_training 1 "nothing was trained" $P --data "$T/good" --out "$T/nowhere" --checkpoint "$T/never.ckpt" --fresh
if [ -e "$T/never.ckpt" ]; then ko no_checkpoint_from_a_refused_run; else ok no_checkpoint_from_a_refused_run; fi
expect poison_checks_checkpoint_dir_before_training 1 "nothing was trained" $P --data "$T/good" --out "$T/out" --checkpoint "$T/nowhere/ckpt" --fresh
if cmp -s "$T/out/train-images-idx3-ubyte" "$T/images.before"; then ok earlier_output_intact; else ko earlier_output_intact; fi
if ls "$T/out" | grep -q tmp; then ko no_temporary_files_left; else ok no_temporary_files_left; fi

E="$B/eval_mnist --test $T/good --epochs 1 --victims softmax"
expect eval_runs_on_poisoned_set 0 "softmax" $E --train "$T/out" --generator "$T/out/generator.l2c" --baseline "$T/good"
expect eval_runs_an_augmented_victim 0 "cnn3x3-aug" $B/eval_mnist --test $T/good --epochs 1 --victims cnn3x3-aug --train "$T/out"
expect eval_runs_the_pytorch_example_cnn 0 "cnn-pt" $B/eval_mnist --test $T/good --epochs 1 --victims cnn-pt --train "$T/out"
expect eval_reads_a_narrow_generator 0 "softmax" $E --train "$T/narrow" --generator "$T/narrow/generator.l2c"
expect eval_json 0 '"victims"' $E --train "$T/out" --json
expect eval_repeats_report_a_range 0 "^softmax .* [0-9.]*-[0-9.]*$" $E --train "$T/good" --repeats 2
expect eval_repeats_name_their_seeds 0 "mean of 3 victims (seeds 4..6)" $E --train "$T/good" --repeats 3 --seed 4
expect eval_repeats_under_a_given_recipe 0 "mean of 2 victims" $E --train "$T/good" --repeats 2 --optimizer sgd
expect eval_rejects_zero_repeats 2 "repeats in 1..100" $E --train "$T/good" --repeats 0
# --repeats 2 from seed 7 reports the mean, lowest and highest of the runs with seeds 7 and 8
final() { $E --train "$T/good" --json "$@" | sed -n 's/.*"final_acc": \([0-9.]*\).*/\1/p'; }
a=$(final --seed 7); b=$(final --seed 8)
got=$($E --train "$T/good" --json --repeats 2 | sed -n 's/.*"final_acc": \([0-9.]*\).*"final_acc_min": \([0-9.]*\), "final_acc_max": \([0-9.]*\).*/\1 \2 \3/p')
want=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f %.4f %.4f", (a + b) / 2, a < b ? a : b, a < b ? b : a }')
if [ -n "$a" ] && [ -n "$b" ] && [ "$got" = "$want" ]; then ok eval_repeats_average_their_runs
else ko "eval_repeats_average_their_runs (seeds 7, 8: '$a' '$b'; --repeats 2 gave '$got', wanted '$want')"; fi
expect eval_rejects_32x32_images 1 "28x28" $E --train "$T/big"
expect eval_rejects_count_mismatch 1 "labels" $E --train "$T/mismatch"
expect eval_rejects_unknown_victim 2 "unknown victim resnet" $E --train "$T/good" --victims mlp,resnet
expect eval_rejects_eps 2 "eps" $E --train "$T/good" --eps 2
expect eval_rejects_label_shift 2 "label-shift" $E --train "$T/good" --label-shift 10
expect eval_trains_with_a_given_recipe 0 "softmax    Adam lr 0.002, batch 16" $E --train "$T/good" --optimizer adam --lr 0.002 --batch 16
expect eval_rejects_unknown_optimizer 2 "optimizer is sgd or adam, not \"rmsprop\"" $E --train "$T/good" --optimizer rmsprop
expect eval_rejects_lr_without_optimizer 2 "only with --optimizer" $E --train "$T/good" --lr 0.1
expect eval_rejects_batch_of_one 2 "batch in" $E --train "$T/good" --batch 1
expect eval_rejects_batch_not_a_number 2 "batch needs a whole number, not \"16x\"" $E --train "$T/good" --batch 16x
expect eval_rejects_epochs_not_a_number 2 "epochs needs a whole number, not \"2e\"" $E --train "$T/good" --epochs 2e
expect eval_trains_with_augmentation 0 "^cnn  *its own optimiser and lr, batch 64, random shifts of +-2 px" $E --train "$T/good" --victims cnn --augment 2
expect eval_rejects_augment_beyond_four 2 "augment in 0..4 pixels, not 5" $E --train "$T/good" --augment 5
expect eval_rejects_augment_not_a_number 2 "augment needs a whole number, not \"2px\"" $E --train "$T/good" --augment 2px
expect eval_rejects_nan_lr 2 "lr needs a finite number, not \"nan\"" $E --train "$T/good" --optimizer sgd --lr nan
expect eval_rejects_zero_lr 2 "lr in" $E --train "$T/good" --optimizer sgd --lr 0
expect eval_reports_a_label_shift 0 "y+9 %" $E --train "$T/shifted" --label-shift 9
mkdir -p "$T/same"   # a test set that is the training set: each image's nearest neighbour is itself
cp "$T/good/train-images-idx3-ubyte" "$T/same/"; cp "$T/good/train-labels-idx1-ubyte" "$T/same/"
cp "$T/good/train-images-idx3-ubyte" "$T/same/t10k-images-idx3-ubyte"; cp "$T/good/train-labels-idx1-ubyte" "$T/same/t10k-labels-idx1-ubyte"
expect eval_knn_finds_each_training_image 0 "knn .* 100.00 *100.00" $B/eval_mnist --train "$T/same" --test "$T/same" --victims knn
expect eval_forest_fits_its_training_set 0 "forest .* 100.00 *100.00" $B/eval_mnist --train "$T/same" --test "$T/same" --victims forest
expect eval_forest_scores_the_noise_alone 0 "forest .*[0-9][.][0-9][0-9] *$" $B/eval_mnist --train "$T/good" --test "$T/good" --victims forest --generator "$T/out/generator.l2c"
expect eval_knn_scores_the_noise_alone 0 "knn .*[0-9][.][0-9][0-9] *$" $B/eval_mnist --train "$T/good" --test "$T/good" --victims knn --generator "$T/out/generator.l2c"
expect eval_rejects_foreign_generator 1 "not a model checkpoint" $E --train "$T/good" --generator "$T/ckpt"
expect eval_rejects_unknown_noise 2 "generator or released" $E --train "$T/good" --generator "$T/out/generator.l2c" --noise raw
expect eval_feeds_the_released_noise 0 "softmax .*[0-9][.][0-9][0-9] *$" $E --train "$T/out" --generator "$T/out/generator.l2c" --noise released
expect eval_json_names_the_noise 0 '"noise_only": "generator"' $E --train "$T/out" --generator "$T/out/generator.l2c" --json
expect eval_json_without_generator 0 '"noise_only": "none"' $E --train "$T/good" --json
expect eval_defends_with_class_means 0 "first 100 clean images per class of $T/good" $E --train "$T/out" --defence class-mean --clean-sample "$T/good"
expect eval_json_names_the_defence 0 '"defence": "class-mean", "defence_per_class": 5, "defence_noise_z": 0.5' $E --train "$T/out" --defence class-mean --clean-sample "$T/good" --per-class 5 --noise-z 0.5 --json
expect eval_rejects_unknown_defence 2 "none or class-mean" $E --train "$T/out" --defence median
expect eval_rejects_zero_per_class 2 "per-class >= 1" $E --train "$T/out" --defence class-mean --per-class 0
expect eval_rejects_negative_noise_z 2 "noise-z in \[0, 100\]" $E --train "$T/out" --defence class-mean --noise-z -1
expect eval_rejects_missing_clean_sample 1 "nowhere" $E --train "$T/out" --defence class-mean --clean-sample "$T/nowhere"
expect eval_rejects_32x32_clean_sample 1 "28x28" $E --train "$T/out" --defence class-mean --clean-sample "$T/big"

# defend_idx writes the defended set (the raw estimate: the tiny random sets leave nothing above
# three standard errors); a set defended against a copy of itself by its raw estimate
# (every image of a class in the sample) is unchanged
D="$B/defend_idx"
mkdir -p "$T/copy" "$T/defended" "$T/raw"
cp "$T/good/train-images-idx3-ubyte" "$T/good/train-labels-idx1-ubyte" "$T/copy/"
expect defend_writes_the_defended_set 0 "wrote $T/defended/train-images-idx3-ubyte" $D --train "$T/out" --clean-sample "$T/good" --out "$T/defended" --noise-z 0
if cmp -s "$T/out/train-labels-idx1-ubyte" "$T/defended/train-labels-idx1-ubyte" && ! cmp -s "$T/out/train-images-idx3-ubyte" "$T/defended/train-images-idx3-ubyte"; then ok defend_keeps_labels_and_moves_images
else ko defend_keeps_labels_and_moves_images; fi
expect defend_raw_estimate_against_itself 0 "noise_z 0" $D --train "$T/good" --clean-sample "$T/copy" --out "$T/raw" --noise-z 0 --per-class 100000
if cmp -s "$T/good/train-images-idx3-ubyte" "$T/raw/train-images-idx3-ubyte"; then ok defend_leaves_a_set_like_its_sample_unchanged
else ko defend_leaves_a_set_like_its_sample_unchanged; fi
expect defend_needs_its_folders 2 "need --train, --clean-sample and --out" $D --train "$T/out" --out "$T/defended"
expect defend_refuses_to_overwrite_the_suspect_set 2 "another folder than --train" $D --train "$T/out" --clean-sample "$T/good" --out "$T/out"
expect defend_rejects_zero_per_class 1 "per_class 0" $D --train "$T/out" --clean-sample "$T/good" --out "$T/defended" --per-class 0
expect defend_rejects_nan_noise_z 2 "noise-z needs a finite number" $D --train "$T/out" --clean-sample "$T/good" --out "$T/defended" --noise-z nan
expect defend_rejects_a_sample_of_another_shape 1 "not the training set's shape" $D --train "$T/out" --clean-sample "$T/big" --out "$T/defended"
expect defend_rejects_a_missing_sample 1 "cannot open" $D --train "$T/out" --clean-sample "$T/nowhere" --out "$T/defended"
cp "$T/defended/train-images-idx3-ubyte" "$T/defended.before"
expect defend_reports_unwritable_output 1 "cannot create" $D --train "$T/out" --clean-sample "$T/good" --out "$T/nowhere"
expect defend_refused_keeps_earlier_output 1 "not the training set's shape" $D --train "$T/good" --clean-sample "$T/big" --out "$T/defended"
if cmp -s "$T/defended/train-images-idx3-ubyte" "$T/defended.before"; then ok defend_earlier_output_intact; else ko defend_earlier_output_intact; fi

# combine_idx averages (or adds) releases of one clean set; a release combined with itself is itself
C="$B/combine_idx"
mkdir -p "$T/combined" "$T/self"
expect combine_writes_the_average 0 "2 releases averaged" $C --clean "$T/good" --release "$T/out" --release "$T/narrow" --out "$T/combined"
expect combine_writes_the_sum 0 "2 releases added" $C --clean "$T/good" --release "$T/out" --release "$T/narrow" --out "$T/combined" --add
expect combine_with_itself 0 "averaged" $C --clean "$T/good" --release "$T/out" --release "$T/out" --out "$T/self"
if cmp -s "$T/out/train-images-idx3-ubyte" "$T/self/train-images-idx3-ubyte"; then ok combine_release_with_itself_is_itself
else ko combine_release_with_itself_is_itself; fi
expect combine_needs_two_releases 2 "at least two --release" $C --clean "$T/good" --release "$T/out" --out "$T/combined"
expect combine_keeps_the_releases 2 "another folder than the releases" $C --clean "$T/good" --release "$T/out" --release "$T/narrow" --out "$T/narrow"
expect combine_rejects_eps 1 "eps" $C --clean "$T/good" --release "$T/out" --release "$T/narrow" --out "$T/combined" --eps 2
expect combine_rejects_a_release_of_another_set 1 "not the clean one's shape" $C --clean "$T/good" --release "$T/out" --release "$T/big" --out "$T/combined"
expect combine_rejects_a_missing_release 1 "cannot open" $C --clean "$T/good" --release "$T/out" --release "$T/nowhere" --out "$T/combined"

# poison_mnist --runs 2: two runs (seeds S and S+1, checkpoints FILE and FILE.run2), their releases
# combined exactly as combine_idx combines the two runs made one by one
mkdir -p "$T/runs" "$T/seed1" "$T/seed2" "$T/pair"
expect poison_trains_two_runs 0 "the runs' perturbations added within eps" $P --data "$T/good" --out "$T/runs" --checkpoint "$T/runs/ckpt" --runs 2 --fresh
expect poison_trains_seed_one 0 "wrote" $P --data "$T/good" --out "$T/seed1" --checkpoint "$T/seed1/ckpt" --fresh
expect poison_trains_seed_two 0 "wrote" $P --data "$T/good" --out "$T/seed2" --checkpoint "$T/seed2/ckpt" --seed 2 --fresh
expect combine_the_two_seeds 0 "added" $C --clean "$T/good" --release "$T/seed1" --release "$T/seed2" --out "$T/pair" --add
if cmp -s "$T/runs/train-images-idx3-ubyte" "$T/pair/train-images-idx3-ubyte" && cmp -s "$T/runs/generator-run2.l2c" "$T/seed2/generator.l2c" \
   && [ -f "$T/runs/ckpt.run2" ]; then ok poison_runs_release_is_the_runs_combined
else ko poison_runs_release_is_the_runs_combined; fi
expect poison_resumes_the_second_run 0 "run 2/2 (seed 2, checkpoint $T/runs/ckpt.run2)" $P --data "$T/good" --out "$T/runs" --checkpoint "$T/runs/ckpt" --runs 2
if grep -c "0 trial(s) to go (1 done)" "$T/log" | grep -q '^2$'; then ok poison_resumes_both_runs_done; else ko poison_resumes_both_runs_done; fi
mkdir -p "$T/runs-mean" "$T/pair-mean"
expect poison_averages_two_runs_when_asked 0 "the runs' perturbations averaged" $P --data "$T/good" --out "$T/runs-mean" --checkpoint "$T/runs/ckpt" --runs 2 --combine mean
expect combine_averages_the_two_seeds 0 "averaged" $C --clean "$T/good" --release "$T/seed1" --release "$T/seed2" --out "$T/pair-mean"
if cmp -s "$T/runs-mean/train-images-idx3-ubyte" "$T/pair-mean/train-images-idx3-ubyte" \
   && ! cmp -s "$T/runs-mean/train-images-idx3-ubyte" "$T/runs/train-images-idx3-ubyte"; then ok poison_runs_mean_is_the_runs_averaged
else ko poison_runs_mean_is_the_runs_averaged; fi
expect poison_rejects_unknown_combination 2 "combine is sum or mean, not \"max\"" $P --data "$T/good" --out "$T/runs" --runs 2 --combine max
expect poison_rejects_zero_runs 2 "runs must be in 1..16" $P --data "$T/good" --out "$T/runs" --runs 0
expect poison_rejects_seventeen_runs 2 "runs must be in 1..16" $P --data "$T/good" --out "$T/runs" --runs 17
# several generators (poison_mnist --runs): their noises averaged (one generator listed twice is
# itself) or added within eps (the default, as --runs combines: twice is a larger noise)
G="$T/runs/generator.l2c"
size() { sed -n 's/.*"noise_mean_abs": \([0-9.]*\).*/\1/p' "$1"; }
for noise in generator released; do
    $E --train "$T/runs" --generator "$G" --noise $noise --json > "$T/one.json" 2>&1
    $E --train "$T/runs" --generator "$G,$G" --noise $noise --json --combine mean > "$T/twice.json" 2>&1
    $E --train "$T/runs" --generator "$G,$G" --noise $noise --json > "$T/sum.json" 2>&1
    if grep -q "\"noise_mean_abs\": 0[.][0-9]*[1-9]" "$T/one.json" && cmp -s "$T/one.json" "$T/twice.json"; then ok "eval_generator_twice_averaged_is_itself_$noise"
    else ko "eval_generator_twice_averaged_is_itself_$noise"; fi
    if awk -v a="$(size "$T/one.json")" -v b="$(size "$T/sum.json")" 'BEGIN { exit !(b > a * 1.2) }'; then ok "eval_generator_twice_added_is_larger_$noise"
    else ko "eval_generator_twice_added_is_larger_$noise ($(size "$T/one.json") -> $(size "$T/sum.json"))"; fi
done
expect eval_rejects_unknown_combination 2 "combine is sum or mean" $E --train "$T/runs" --generator "$G,$G" --combine max
expect eval_feeds_two_generators_noise 0 "softmax .*[0-9][.][0-9][0-9] *$" $E --train "$T/runs" --generator "$G,$T/runs/generator-run2.l2c"
expect eval_feeds_two_generators_released_noise 0 "softmax .*[0-9][.][0-9][0-9] *$" $E --train "$T/runs" --generator "$G,$T/runs/generator-run2.l2c" --noise released
expect eval_rejects_a_missing_generator_in_a_list 1 "nowhere.l2c" $E --train "$T/runs" --generator "$G,$T/nowhere.l2c"
expect eval_rejects_an_empty_generator_list 1 "names no file" $E --train "$T/runs" --generator ","

# --help prints the usage on stdout and exits 0, whatever else is on the line (nothing runs)
for prog in poison_mnist eval_mnist train_mnist idx2png confusion2png probe_mnist bench defend_idx combine_idx; do
    expect "${prog}_help_prints_usage" 0 "^usage: $prog" $B/$prog --data "$T/nowhere" --help
done
expect poison_help_lists_the_defaults 0 "Defaults (make run's)" $B/poison_mnist -h
expect bench_rejects_unknown_option 2 "bad option --bogus" $B/bench --bogus
expect bench_rejects_unknown_figure 2 "one figure: gemm" $B/bench --only gemm_2048

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
