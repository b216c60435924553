# nurture: `make run` starts the whole system, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The instance directory holds the secrets `make run` makes; NURTURE_INSTANCE_PATH moves it.
INSTANCE := $(or $(NURTURE_INSTANCE_PATH),instance)
SECRET := $(INSTANCE)/secret_key
ATS    := $(INSTANCE)/ats_secret
# `make run PORT=8080` (or NURTURE_PORT=8080 make run) serves the admin on that port.
PORT   ?=

.PHONY: run test install system-deps lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Programs the tests drive for real (PostgreSQL, SpamAssassin, Dovecot, Chromium...),
# installed with apt-get when missing and we run as root.
system-deps:
	@bash .ci/system-deps.sh

$(SECRET) $(ATS):
	mkdir -p $(INSTANCE)
	$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))' > $@
	chmod 600 $@

run: install $(SECRET) $(ATS)
	NURTURE_SECRET_KEY="$${NURTURE_SECRET_KEY:-$$(cat $(SECRET))}" \
	NURTURE_ATS_SECRET="$${NURTURE_ATS_SECRET:-$$(cat $(ATS))}" \
	$(if $(PORT),NURTURE_PORT="$(PORT)") $(BIN)/nurture up

test: install system-deps lint
	$(BIN)/python -m pytest -n auto

# The habits, quickly: formatting, lint, the types of the business rules, the layers.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) instance *.egg-info
