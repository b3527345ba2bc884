# Two commands on a fresh machine: `make run` (serve Atrium) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install bench clean messages compilemessages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet -e ".[dev,ldap]" 2>/dev/null || \
		echo "NOTE: LDAP sign-in not installed (python-ldap needs: apt-get install libldap2-dev libsasl2-dev; then rm $(VENV)/.installed && make install)"
	touch $@

install: $(VENV)/.installed

# The portal's public URL follows HOST/PORT unless SITE_URL is set (links, SSO callbacks).
RUN_SITE_URL = $(or $(SITE_URL),http://$(HOST):$(PORT))

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	SITE_URL="$(RUN_SITE_URL)" $(PY) manage.py bootstrap
	SITE_URL="$(RUN_SITE_URL)" $(VENV)/bin/daphne -b $(HOST) -p $(PORT) portal.asgi:application

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The habits CI checks: ruff (pyproject.toml [tool.ruff]), the import contract ([tool.importlinter])
# and the types ([tool.mypy]).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/ttft.py $(BENCH_ARGS)

# Atrium's own translations (locale/): every page a user sees (sign-in, chat, settings), the
# messages of accounts and chat, and the chat page's scripts (djangojs); see README "Languages".
# The admin, the endpoint catalogue and vendored libraries stay out of scope.
LANGS := zh_Hans de es fr ja ru pt_BR ar
MESSAGES_IGNORE := endpoints/* bench/* tests/* staticfiles/* templates/admin/* */admin.py */migrations/* \
	accounts/admin.py billing/admin*.py portal/static/vendor/* .venv/* node_modules/* var/*

messages: install
	$(PY) manage.py makemessages $(addprefix -l ,$(LANGS)) --add-location=file $(addprefix --ignore=,$(MESSAGES_IGNORE))
	$(PY) manage.py makemessages -d djangojs $(addprefix -l ,$(LANGS)) --add-location=file $(addprefix --ignore=,$(MESSAGES_IGNORE))

compilemessages: install
	$(PY) manage.py compilemessages --ignore=.venv --ignore=node_modules --ignore=staticfiles

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
