# The two set-up commands of the README. Everything they need (apt packages, the tools venv,
# the Docker engine, the test-host images) is installed by tests/harness/devenv.py itself.
PYTHON ?= python3

.PHONY: lab down test bench
lab:  ## create the local lab (containers as hosts) and deploy playbooks/site.yml into it
	$(PYTHON) tests/harness/devenv.py lab
down: ## remove the lab's hosts, network and volumes
	$(PYTHON) tests/harness/devenv.py down
test: ## run every test: lint, unit tests, Galaxy/ansible-test/docs gates, build, syntax checks, molecule
	$(PYTHON) tests/harness/devenv.py test
bench: ## time site.yml on a fresh lab (first converge, re-run, one change) against the apt floor
	$(PYTHON) tests/harness/devenv.py bench
