# omerofs: the two commands a newcomer needs are `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install hql test test-fast lint typecheck demo docs bench soak hunt mutate clean
.PHONY: test-pythons

install:
	@bash scripts/install.sh

# Hibernate 3.6.10 + HSQLDB from Debian, HqlCheck compiled (docs/hql.rst)
hql:
	@bash scripts/install_hql.sh >/dev/null

lint: install
	$(PY) -m ruff check omerofs tests benchmarks

typecheck: install
	$(PY) -m mypy

# pytest exits 5 when it collected no test: make fails on it like on any error.
# Then the gateway tests and a pixel-exact mount on the other Pythons this
# machine has (OTHER_PYTHONS, each in its own .venv-X.Y; empty: none), so that
# CI's `make test` covers them too; the first run builds their zeroc-ice wheels.
OTHER_PYTHONS ?= 3.12 3.13
test: install hql lint typecheck docs
	$(PY) -m pytest $(PYTEST_ARGS)
	@found=$$( [ -z "$(strip $(OTHER_PYTHONS))" ] || \
	    bash scripts/test_pythons.sh --list $(OTHER_PYTHONS) | cut -d' ' -f1 | xargs); \
	if [ -n "$$found" ]; then $(MAKE) --no-print-directory test-pythons PYTHONS="$$found"; \
	else echo "[test] no other Python found (OTHER_PYTHONS=$(OTHER_PYTHONS)): test-pythons skipped" >&2; fi

# the edit loop: the FUSE-free core (no mount, no devserver, no subprocess),
# under a minute; the tests of these files that use the devserver, a mount or
# a subprocess fixture are left out by the `core` marker (tests/conftest.py)
FAST_TESTS := tests/test_layout.py tests/test_tiff.py tests/test_plane_sizes.py \
	tests/test_stack.py tests/test_index.py tests/test_cache.py tests/test_cache_groups.py \
	tests/test_kinds.py tests/test_parts.py tests/test_namespace.py \
	tests/test_node_lifetime.py tests/test_prefetch_horizon.py tests/test_core_memory.py \
	tests/test_spool_uploads.py tests/test_spool_claim.py tests/test_spool_format.py \
	tests/test_retry.py tests/test_settings_table.py tests/test_ops_config.py \
	tests/test_fingerprint.py tests/test_gateway_contract.py tests/test_fs_handler.py \
	tests/test_accounts.py
test-fast: install
	$(PY) -m pytest -q -m core $(PYTEST_ARGS) $(FAST_TESTS)

demo: install
	@bash scripts/demo.sh

# -W: a warning (broken reference, bad markup) fails the build
docs: install
	$(PY) -m sphinx -W -q -b html docs docs/_build/html

# opt-in: minutes of load (OMEROFS_SOAK_SECONDS, default 120)
soak: install
	$(PY) -m pytest -m soak -s tests/test_soak.py

# opt-in: the shadow model with new random sequences (make test runs a fixed
# set); HUNT_EXAMPLES (default 200) examples of HUNT_STEPS (default 15) steps
HUNT_EXAMPLES ?= 200
HUNT_STEPS ?= 15
hunt: install
	OMEROFS_SHADOW_EXAMPLES=$(HUNT_EXAMPLES) OMEROFS_SHADOW_STEPS=$(HUNT_STEPS) \
	    $(PY) -m pytest -s -p no:cacheprovider tests/test_shadow.py -k shadow_model

bench: install
	$(PY) benchmarks/run_all.py

# mutation testing of spool, uploads, layout, tiff and plane_sizes
# with the FUSE-free tests (pyproject [tool.mutmut]); scores: mutants/ and `mutmut results`
mutate: install
	$(PY) -m pip install -q --disable-pip-version-check "mutmut==3.8.1"
	cd $(CURDIR) && $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

# every Python 3.10-3.13 found (or PYTHONS="3.12 3.13"): its own .venv-X.Y, the
# gateway tests and a pixel-exact mount test; see scripts/test_pythons.sh
PYTHONS ?=
test-pythons:
	@bash scripts/test_pythons.sh $(PYTHONS)

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
