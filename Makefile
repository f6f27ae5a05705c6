# Weft: `make run` starts it on this machine, `make test` runs the tests, `make lint` the checks.
# Each target first makes sure uv and the virtual environment (.venv, from uv.lock) are there.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# uv on the PATH, else the one pip installed for $(PYTHON); looked up when a recipe runs.
UV = $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
UP_ARGS ?=
PYTEST_ARGS ?=

# Production settings for `check --deploy`; the key is random and used for nothing else.
DEPLOY_ENV = DEBUG=0 ALLOWED_HOSTS=weft.example.com WEFT_HTTPS=1 WEFT_SSL_REDIRECT=1 \
	SECRET_KEY="$$($(VENV)/bin/python -c 'import secrets; print(secrets.token_urlsafe(64))')"

.PHONY: run test lint messages uv

# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE, as on
# the CI machines): web, worker, beat and the tests' own servers and workers each import all of
# Weft, and compiling it from source each time made the suite about a seventh slower.
run: $(VENV)/.synced
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python manage.py up $(UP_ARGS)

test: $(VENV)/.synced
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest $(PYTEST_ARGS)

# Runs every check, then fails if any did.
lint: $(VENV)/.synced
	@status=0; \
	echo "== ruff check"; $(VENV)/bin/ruff check --no-cache . || status=1; \
	echo "== ruff format --check"; $(VENV)/bin/ruff format --check . || status=1; \
	echo "== mypy"; $(VENV)/bin/mypy tenants config providers knowledge workflows apps billing || status=1; \
	echo "== makemigrations --check"; \
	$(VENV)/bin/python manage.py makemigrations --check --dry-run || status=1; \
	echo "== check --deploy (production settings)"; \
	$(DEPLOY_ENV) $(VENV)/bin/python manage.py check --deploy --fail-level WARNING || status=1; \
	exit $$status

# The portal's translations (locale/): gather its strings, then compile them after
# translating (needs GNU gettext: apt-get install gettext). The compiled .mo files are kept in
# git, so running Weft needs no gettext.
PORTAL_ONLY = $(foreach d,.venv var tenants knowledge providers workflows config tests bench \
	templates/admin templates/apps templates/workflows templates/knowledge templates/providers \
	templates/tenants templates/registration apps/admin apps/api apps/dsl apps/pipeline \
	apps/services apps/management apps/migrations apps/static,-i "$(d)/*") \
	$(foreach f,$(wildcard apps/*.py),-i "$(f)")
messages: $(VENV)/.synced
	$(VENV)/bin/python manage.py makemessages -l zh_Hans $(PORTAL_ONLY)
	cd locale && ../$(VENV)/bin/python ../manage.py compilemessages -l zh_Hans

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(PYTHON) -m pip install --user uv || $(PYTHON) -m pip install uv

$(VENV)/.synced: pyproject.toml uv.lock | uv
	$(UV) sync --frozen
	@touch $@
