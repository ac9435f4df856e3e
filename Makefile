# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medchat-installed
# torch first and pinned: an unpinned torch makes pip fetch a multi-GB CUDA build
TORCH  := torch==2.13.0

.PHONY: setup run test lint clean llama-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama.cpp compiled for any x86-64 with AVX2 rather than for the building CPU: a native build uses
# AVX-512 and AMX instructions that some virtual machines advertise and then refuse (the process dies
# with SIGILL at its first answer). Built without pip's cache, which may hold a native build.
LLAMA       := llama-cpp-python==0.3.36
LLAMA_STAMP := $(VENV)/.llama-cpp-portable-0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
	-DLLAVA_BUILD=OFF -DMTMD_BUILD=OFF

$(LLAMA_STAMP): | $(BIN)/python
	if [ "$$(uname -m)" = x86_64 ]; then export CMAKE_ARGS="$(LLAMA_CMAKE)"; fi; \
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --no-cache-dir --force-reinstall --no-deps '$(LLAMA)'
	touch $@

# llama.cpp's own HTTP server (N parallel slots, continuous batching) for `medchat serve --model-server N`,
# compiled from the llama.cpp source vendored in the same llama-cpp-python sdist, with the same portable
# flags; only the server target. No web UI (its assets would be downloaded), no HTTPS, static libraries.
LLAMA_SERVER_DIR   := .llama-server
LLAMA_SERVER       := $(LLAMA_SERVER_DIR)/bin/llama-server
LLAMA_SDIST        := $(LLAMA_SERVER_DIR)/src/llama_cpp_python-0.3.36.tar.gz
LLAMA_SERVER_CMAKE := -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
	-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
JOBS ?= 2

llama-server: $(LLAMA_SERVER)

$(LLAMA_SDIST): | $(BIN)/python
	mkdir -p $(dir $@)
	$(BIN)/pip download --no-binary :all: --no-deps -d $(dir $@) '$(LLAMA)'

$(LLAMA_SERVER): $(LLAMA_SDIST)
	rm -rf $(LLAMA_SERVER_DIR)/build && mkdir -p $(LLAMA_SERVER_DIR)/build $(dir $@)
	tar xzf $< -C $(LLAMA_SERVER_DIR)/build --strip-components=1 llama_cpp_python-0.3.36/vendor/llama.cpp
	flags="$(LLAMA_SERVER_CMAKE)"; if [ "$$(uname -m)" = x86_64 ]; then flags="$$flags $(LLAMA_CMAKE)"; fi; \
	cmake -S $(LLAMA_SERVER_DIR)/build/vendor/llama.cpp -B $(LLAMA_SERVER_DIR)/build/out $$flags
	cmake --build $(LLAMA_SERVER_DIR)/build/out --target llama-server -j $(JOBS)
	cp $(LLAMA_SERVER_DIR)/build/out/bin/llama-server $@
	$@ --version

$(STAMP): pyproject.toml $(LLAMA_STAMP) | $(BIN)/python
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e '.[dev,postgres]'
	touch $@

setup: $(STAMP)

run: setup
	$(BIN)/medchat serve --sample-if-empty

# pytest exits 5 when it collects no test: that is not a failure, anything else non-zero is
test: setup
	# browser tests use Debian's chromium; they skip with a reason where it cannot be installed
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || true
	# the deployment tests start a real PostgreSQL and nginx; they skip with a reason where these are missing
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql) || true
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update -qq && apt-get install -y -qq nginx) || true
	$(BIN)/python -m pytest --durations=30; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# bench/ is code we run and publish numbers from: linted and type-checked like the package
lint: setup
	$(BIN)/ruff check chatbot ingestion prompts tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(LLAMA_SERVER_DIR) *.egg-info .pytest_cache .ruff_cache .mypy_cache
