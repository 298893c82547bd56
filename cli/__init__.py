"""The ``medaug`` command line: parses arguments, calls services, renders results."""
