# Tanuki Portal: `make demo` runs the portal with demo data; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The dev cluster's SSH user CA signs members' certificates; the stand-in judge's key is staged for
# each evaluation as a file only its member reads (never in a script or the database).
DEVCLUSTER_DIR ?= /var/lib/tanuki-devcluster
SSH_USER_CA_KEY ?= $(DEVCLUSTER_DIR)/ssh/user_ca
# STATIC_MANIFEST: pages link the hashed copies `collectstatic` writes, cached for a year, as in production.
DEMO_ENV := DEBUG=1 DEMO=1 STATIC_MANIFEST=1 SSH_USER_CA_KEY=$(SSH_USER_CA_KEY) DEMO_JUDGE_KEY=demo-judge

.PHONY: demo test lint typecheck pytest venv messages clean serve static token

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Re-install when pyproject.toml changes. The training extra pins torch==2.13.0 in the same install
# as transformers/TRL/PEFT, so pip takes the CPU wheel instead of a multi-GB CUDA build.
EXTRAS ?= dev,training
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

# umask 077: the SQLite file (and its -wal/-shm) only for the portal's own user: the dev cluster's
# members are users of this machine too.
demo: venv static
	umask 077; $(DEMO_ENV) $(PY) manage.py migrate --noinput
	chmod 600 tanuki.sqlite3* 2>/dev/null || true
	$(DEMO_ENV) $(PY) manage.py load_demo
	@# A real Slurm cluster on this machine when we may install and run it (root, apt); else none.
	@if [ "$$(id -u)" = 0 ] && { command -v apt-get >/dev/null || command -v slurmctld >/dev/null; }; then \
		scripts/devcluster up && $(DEMO_ENV) $(PY) manage.py register_devcluster \
		&& { $(DEMO_ENV) PORT=$(PORT) $(PY) manage.py stage_demo_assets \
		     || echo "No tiny model for demo training runs (needs the training extra)."; } \
		|| echo "The dev cluster did not start; the portal runs without a cluster."; \
	else echo "No dev cluster (needs root and apt): the portal runs without a cluster."; fi
	@echo "Tanuki Portal: http://127.0.0.1:$(PORT)/  (user admin, password $${DEMO_PASSWORD:-demo})"
	umask 077; $(DEMO_ENV) SCHEDULER_EMBEDDED=1 $(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) config.asgi:application

serve: venv static
	umask 077; $(DEMO_ENV) SCHEDULER_EMBEDDED=1 $(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) config.asgi:application

# Hashed, compressed copies of the static files in staticfiles/ (what the demo's pages link).
static: venv
	$(DEMO_ENV) $(PY) manage.py collectstatic --noinput -v 0

# An API token for a user of the demo (after `make demo`): make token USER=admin
token:
	$(if $(filter command line,$(origin USER)),,$(error Name the user: make token USER=<username>))
	@$(DEMO_ENV) $(PY) manage.py drf_create_token $(USER)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(VENV)/bin/pytest

test: lint typecheck pytest

# Regenerate the Japanese catalog after changing UI strings, then translate the new entries.
messages: venv
	DEBUG=1 $(PY) manage.py makemessages -l ja --ignore '.venv/*' --ignore 'training/*'
	DEBUG=1 $(PY) manage.py makemessages -d djangojs -l ja --ignore '.venv/*' --ignore 'staticfiles/*'
	DEBUG=1 $(PY) manage.py compilemessages --ignore '.venv/*'

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
