# learn2confuse - build, test, run.
#   make            build examples, tools and tests
#   make run        poison MNIST with the defaults and evaluate the poison (the main job)
#   make train      train the reference CNN on clean MNIST
#   make defence    evaluate make run's poison against the class-mean defence
#   make test       build and run the test suite
#   make unit       the unit tests only (no command-line checks)
#   make bench      speed figures (tools/bench)
#   make experiment the epsilon / fraction / targeted studies (long)
# Variables: CC=gcc|clang|tcc, OPENMP=0 to build without OpenMP, SAN=1 for address+undefined sanitizers,
#   RUNS=2 (make run: two attack runs, their perturbations added within eps; twice the time), POISON_ARGS=...

CC ?= cc
OPENMP ?= 1
SAN ?= 0
WARN := -std=c99 -Wall -Wextra -Wpedantic -Werror
OPT ?= -O3 -march=native
LDLIBS := -lm

ifeq ($(notdir $(CC)),tcc)
  OPENMP := 0
  OPT := -O2
endif
ifeq ($(OPENMP),1)
  OPT += -fopenmp
endif
ifeq ($(SAN),1)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all $(filter -fopenmp,$(OPT))
endif
CFLAGS := $(WARN) $(OPT) -I.

BUILD := build
MNIST := $(BUILD)/mnist
MNIST_FILES := $(MNIST)/train-images-idx3-ubyte $(MNIST)/train-labels-idx1-ubyte \
               $(MNIST)/t10k-images-idx3-ubyte $(MNIST)/t10k-labels-idx1-ubyte
EXAMPLES := $(BUILD)/train_mnist $(BUILD)/poison_mnist $(BUILD)/eval_mnist
TOOLS := $(BUILD)/idx2png $(BUILD)/confusion2png $(BUILD)/bench $(BUILD)/probe_mnist $(BUILD)/defend_idx $(BUILD)/combine_idx
TESTS := $(BUILD)/test_main $(BUILD)/oom_main

.PHONY: all test unit run train baseline defence bench experiment data clean
all: $(EXAMPLES) $(TOOLS) $(TESTS)

$(BUILD):
	mkdir -p $(BUILD) $(MNIST)

# MNIST ships gzipped in data/; unpack on demand (gzip only, no other tool).
$(MNIST)/%: data/%.gz | $(BUILD)
	gzip -dc $< > $@.tmp && mv $@.tmp $@
data: $(MNIST_FILES)

$(BUILD)/%: examples/%.c examples/*.h learn2confuse.h | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
$(BUILD)/%: tools/%.c tools/png.h examples/cli_args.h learn2confuse.h | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)
$(BUILD)/test_main: tests/*.c tests/*.h learn2confuse.h | $(BUILD)
	$(CC) $(CFLAGS) tests/test_main.c -o $@ $(LDLIBS)
$(BUILD)/oom_main: tests/oom_main.c learn2confuse.h | $(BUILD)
	$(CC) $(CFLAGS) tests/oom_main.c -o $@ $(LDLIBS)

test: unit $(EXAMPLES) $(TOOLS)
	sh tests/cli.sh $(BUILD)

# The unit tests alone (no command-line checks of the examples): CI's extra compiler passes.
unit: $(TESTS)
	sh tests/compile_checks.sh "$(CC)" "$(CFLAGS)" $(BUILD)
	./$(BUILD)/oom_main
	./$(BUILD)/test_main

train: $(BUILD)/train_mnist data
	./$(BUILD)/train_mnist --data $(MNIST) --epochs 2

# The main job: learn the generator (resumes from out/attack.ckpt if present), release the poisoned
# set as MNIST IDX files in out/poisoned/, then train fresh victims on clean and poisoned data.
POISON_ARGS ?=
RUNS ?= 1
comma := ,
space := $(subst ,, )
# the runs' generators (poison_mnist --runs), listed for noise only: generator.l2c,generator-run2.l2c,...
GENERATORS := $(subst $(space),$(comma),$(strip out/poisoned/generator.l2c \
    $(foreach k,$(wordlist 2,$(RUNS),1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16),out/poisoned/generator-run$(k).l2c)))
run: $(BUILD)/poison_mnist $(BUILD)/eval_mnist $(BUILD)/idx2png $(BUILD)/confusion2png data
	mkdir -p out/poisoned
	./$(BUILD)/poison_mnist --data $(MNIST) --out out/poisoned --checkpoint out/attack.ckpt --runs $(RUNS) $(POISON_ARGS)
	./$(BUILD)/eval_mnist --train out/poisoned --test $(MNIST) \
		--generator $(GENERATORS) --confusion-dir out | tee out/eval.txt
	./$(BUILD)/idx2png --clean $(MNIST)/train-images-idx3-ubyte --poisoned out/poisoned/train-images-idx3-ubyte \
		--labels $(MNIST)/train-labels-idx1-ubyte --out out/figure1.png
	./$(BUILD)/confusion2png --in out/confusion-cnn.txt --out out/confusion-cnn.png

# make run's poison against a defender: each class's shared perturbation, estimated with the first
# 100 clean training images per class, is subtracted before the victims train (l2c_defend_class_mean).
defence: $(BUILD)/eval_mnist data
	./$(BUILD)/eval_mnist --train out/poisoned --test $(MNIST) --defence class-mean --clean-sample $(MNIST) \
		--victims softmax,mlp,lenet,cnn-small,cnn,cnn-large | tee out/eval-defended.txt

# The clean column of the paper's Table 1: the same victims trained on clean MNIST.
baseline: $(BUILD)/eval_mnist data
	./$(BUILD)/eval_mnist --train $(MNIST) --test $(MNIST) | tee out/eval-clean.txt

bench: $(BUILD)/bench
	./$(BUILD)/bench

experiment: $(BUILD)/poison_mnist $(BUILD)/eval_mnist data
	sh tools/experiment.sh

clean:
	rm -rf $(BUILD)
