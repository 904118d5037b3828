#!/bin/sh
# The paper's studies at this library's scale (make experiment): an eps sweep, the fraction of the
# training set poisoned, and targeted vs non-targeted. Each generator is learnt with the defaults of
# poison_mnist (pass extra options in POISON_ARGS) and judged by victims trained from scratch
# (eval_mnist, VICTIMS below). Writes markdown tables to out/experiment.md as it goes.
# Long: about one `make run` per line of the tables. A quick version (what the README reports):
#   EPSILONS="0.1 0.15 0.2 0.3" POISON_ARGS="--warmup 2000 --trials 8 --batch 64 --victim-lr 0.01 --steps 100" \
#   VICTIMS=mlp,cnn,cnn3x3 sh tools/experiment.sh   (measured with v0.2.0, whose batch, victim lr and
#   trial length the flags pin)
set -eu
B=${B:-build}
DATA=${DATA:-build/mnist}
OUT=${OUT:-out/experiment}
VICTIMS=${VICTIMS:-softmax,mlp,lenet,cnn}
POISON_ARGS=${POISON_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:-}
EPSILONS=${EPSILONS:-0.1 0.15 0.2 0.25 0.3}
FRACTIONS=${FRACTIONS:-0.5 0.8 0.9 1.0}
mkdir -p "$OUT"
md=out/experiment.md

# accuracy column of eval_mnist's table for each victim, as "a / b / c"
row() { awk 'NR > 1 { printf "%s%s", sep, $(NF - 3); sep = " / " }' "$1"; }
shifted() { awk 'NR > 1 { printf "%s%s", sep, $(NF - 1); sep = " / " }' "$1"; }

poison() {   # poison NAME ARGS...: learn (or resume) a generator and release its poison
    name=$1; shift
    mkdir -p "$OUT/$name"
    "$B/poison_mnist" --data "$DATA" --out "$OUT/$name" --checkpoint "$OUT/$name.ckpt" $POISON_ARGS "$@" > "$OUT/$name.log"
}
evaluate() {   # evaluate NAME: train the victims on $OUT/NAME (atomically into NAME.eval)
    "$B/eval_mnist" --train "$OUT/$1" --test "$DATA" --victims "$VICTIMS" $EVAL_ARGS > "$OUT/$1.eval.tmp"
    mv "$OUT/$1.eval.tmp" "$OUT/$1.eval"
}
# Rows already evaluated are kept, so an interrupted experiment resumes; remove $OUT to start over.
done_already() { [ -s "$OUT/$1.eval" ]; }

{
    echo "# Experiments (victims: $VICTIMS; clean test accuracy %; poison_mnist $POISON_ARGS; eval_mnist $EVAL_ARGS)"
    echo
    echo "## eps sweep, whole training set poisoned, non-targeted"
    echo
    echo "| eps | $VICTIMS |"
    echo "|---|---|"
} > "$md"
for eps in $EPSILONS; do
    done_already "eps$eps" || { poison "eps$eps" --eps "$eps" && evaluate "eps$eps"; }
    echo "| $eps | $(row "$OUT/eps$eps.eval") |" >> "$md"
done

{ echo; echo "## fraction of the training set poisoned (eps 0.3, same generator)"; echo
  echo "| fraction | $VICTIMS |"; echo "|---|---|"; } >> "$md"
for f in $FRACTIONS; do
    mkdir -p "$OUT/frac$f"
    done_already "frac$f" || { poison "eps0.3" --eps 0.3 --fraction "$f" --out "$OUT/frac$f" && evaluate "frac$f"; }
    echo "| $f | $(row "$OUT/frac$f.eval") |" >> "$md"
done

{ echo; echo "## targeted (y -> y+1) vs non-targeted, eps 0.3"; echo
  echo "| mode | clean test accuracy: $VICTIMS | predicted as y+1: $VICTIMS |"; echo "|---|---|---|"; } >> "$md"
done_already targeted || { poison targeted --eps 0.3 --targeted && evaluate targeted; }
echo "| non-targeted | $(row "$OUT/eps0.3.eval") | $(shifted "$OUT/eps0.3.eval") |" >> "$md"
echo "| targeted | $(row "$OUT/targeted.eval") | $(shifted "$OUT/targeted.eval") |" >> "$md"
cat "$md"
