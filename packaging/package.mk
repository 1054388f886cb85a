# Packaging (issue 18): make deb, make uninstall, man pages, completions, package-tests.
# Filled in by the packaging work; included from the top-level Makefile.
.PHONY: package-tests
package-tests:
	@echo "package-tests: not yet written" >&2; exit 1
