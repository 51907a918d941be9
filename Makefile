.PHONY: run test
run:
	python3 scripts/run
test:
	python3 scripts/test
