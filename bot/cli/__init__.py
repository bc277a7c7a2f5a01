"""The command line: thin click commands that parse, call one function and print
(``launch.py`` answers ``--help`` from a cache before click is imported). The top layer."""
