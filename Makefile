# "make run" and "make test" are the README's two commands; the other targets are development shortcuts.
.PHONY: run test ci lint format typecheck migrations-check compose-config

run:  ## install everything and run web, worker and beat at http://127.0.0.1:8000
	./scripts/run

test:  ## the whole test suite against PostgreSQL, Redis, a worker, SMTP and Chromium
	./scripts/test

ci:  ## what CI runs: lint, migration and deploy checks, then the tests
	bash .ci/run

lint:  ## what CI lints: ruff check, ruff format --check and djlint on the templates
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/djlint --lint servicedesk channels_app reports

format:
	.venv/bin/ruff format .

typecheck:  ## mypy on the files pyproject.toml names, exactly as CI runs it
	.venv/bin/mypy

migrations-check:
	.venv/bin/python manage.py makemigrations --check --dry-run

compose-config:
	docker-compose -f docker-compose.yml config -q
