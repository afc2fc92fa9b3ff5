# Every install step lives here: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXAMPLE := build/chelsea-32.png
SHARED := $(or $(DSMOOTH_SHARED_DIR),../shared)

.PHONY: run test test-fast check lint typecheck format clean openapi clients clients-check bench fuzz \
	gpu-wheels gpu-carry

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
# checkov (tests/test_deploy.py) in a venv of its own: its pins would downgrade botocore,
# packaging and networkx in this one.
	test -x $(VENV)/checkov/bin/checkov || { $(PYTHON) -m venv $(VENV)/checkov \
		&& $(VENV)/checkov/bin/python -m pip install --quiet 'checkov==3.3.30'; }
	touch $(STAMP)

## run: the REST gateway on 127.0.0.1:8000 with the embedded defaults; prints a curl example
run: $(STAMP)
	$(BIN)/dsmooth example --out $(EXAMPLE)
	$(BIN)/dsmooth serve --host 127.0.0.1 --port 8000 --example $(EXAMPLE)

## test: every check: lint, format, types, import contracts, the whole test suite
test: check

check: lint typecheck clients-check
	$(BIN)/pytest

## test-fast: the inner loop: lint, types, import contracts and the tests not marked slow (< 2 min)
test-fast: lint typecheck
	$(BIN)/pytest -m "not slow" -q

## fuzz [FUZZ_EXAMPLES=1000] [FUZZ_SEED=19]: schemathesis, every check, in development and production (minutes)
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),1000) $(BIN)/pytest tests/test_fuzz.py -q

## bench NAME=... [ARGS=...]: one benchmark (`dsmooth bench --help` lists them)
bench: $(STAMP)
	$(BIN)/dsmooth bench $(NAME) $(ARGS)

## gpu-wheels: wheels of what the GPU campaign imports beyond torch/torchvision/numpy (build/gpu-carry/wheels)
gpu-wheels: $(STAMP)
	rm -rf build/gpu-carry/wheels
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --dest build/gpu-carry/wheels \
		$$($(BIN)/python -m benchmarks.gpu_campaign wheels)

## gpu-carry: gpu-wheels + an ignored copy of the data the campaign reads: carry build/gpu-carry (README)
gpu-carry: gpu-wheels
	rm -rf build/gpu-carry/shared
	mkdir -p build/gpu-carry/shared/data/cifar10 build/gpu-carry/shared/models/third-party
	cp $(SHARED)/data/cifar10/train-jpeg.tar.gz $(SHARED)/data/cifar10/test-lossless-1000.npz \
		build/gpu-carry/shared/data/cifar10/
	cp -R $(SHARED)/models/third-party/cifar10-resnet build/gpu-carry/shared/models/third-party/
	chmod -R u+w build/gpu-carry/shared
	$(BIN)/python -m benchmarks.gpu_campaign travel-size build/gpu-carry

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## openapi: export the app's OpenAPI document (sorted keys) to clients/openapi.json
openapi: $(STAMP)
	$(BIN)/python -m service.api.openapi_export clients/openapi.json

## clients: regenerate the Python and TypeScript SDKs from clients/openapi.json (pinned tools) and
## stamp the service's version on the hand-written packages (clients/python-sdk, clients/typescript)
clients: openapi
	rm -rf clients/python
	cd clients && PATH="$(CURDIR)/$(BIN):$$PATH" "$(CURDIR)/$(BIN)/openapi-python-client" generate \
		--path openapi.json --output-path python --config python-client.yaml
	# openapi-python-client 0.29 names Unset without importing it in operations whose body is JSON
	# or multipart: add the import
	grep -l 'Unset = UNSET' clients/python/dsmooth_client/api/*/*.py | xargs -r sed -i \
		's/^from \.\.\.types import UNSET, Response$$/from ...types import UNSET, Response, Unset/'
	$(BIN)/python clients/stamp_version.py
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run -s generate

## clients-dist: the SDKs' release artifacts in build/dist: wheels and sdists of
## denoised-smoothing-client and dsmooth (python -m build), the npm tarball (npm pack)
.PHONY: clients-dist
clients-dist: $(STAMP)
	rm -rf build/dist && mkdir -p build/dist
	$(BIN)/python -m build --outdir build/dist clients/python
	$(BIN)/python -m build --outdir build/dist clients/python-sdk
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error \
		&& npm pack --pack-destination $(CURDIR)/build/dist

## clients-check: fail when the committed SDKs differ from a fresh regeneration
clients-check: clients
	@git diff --quiet -- clients && test -z "$$(git status --porcelain -- clients)" \
		|| { git status --short -- clients; echo "clients/ is stale: run 'make clients' and commit"; exit 1; }

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
