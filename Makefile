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
# under a minute: tests/core and the in-memory parts of a few other files; the
# tests that use the devserver, a mount or a subprocess fixture are left out by
# the `core` marker (tests/conftest.py)
FAST_TESTS := tests/core tests/gateway/test_fingerprint.py \
	tests/gateway/test_gateway_contract.py tests/gateway/test_accounts.py tests/ops/test_ops_config.py
test-fast: install
	$(PY) -m pytest -q -m core $(PYTEST_ARGS) $(FAST_TESTS)

demo: install
	@bash scripts/demo.sh

# -W: a warning (broken reference, bad markup) fails the build
docs: install
	$(PY) -m sphinx -W -q -b html docs docs/_build/html

# opt-in: minutes of load (OMEROFS_SOAK_SECONDS, default 120)
soak: install
	$(PY) -m pytest -m soak -s tests/mount/test_soak.py

# opt-in: the shadow model with new random sequences (make test runs a fixed
# set); HUNT_EXAMPLES (default 200) examples of HUNT_STEPS (default 15) steps
HUNT_EXAMPLES ?= 200
HUNT_STEPS ?= 15
hunt: install
	OMEROFS_SHADOW_EXAMPLES=$(HUNT_EXAMPLES) OMEROFS_SHADOW_STEPS=$(HUNT_STEPS) \
	    $(PY) -m pytest -s -p no:cacheprovider tests/mount/test_shadow.py -k shadow_model

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
