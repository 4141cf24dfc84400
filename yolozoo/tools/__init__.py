"""Developer tools that check the package itself (run in ``nox -s lint``)."""
