"""``python -m helixpy.cli ...`` (tests and LocalCluster start daemons this way).

The program is named ``helixpy`` either way: usage lines read the same, and shell
completion answers to ``_HELIXPY_COMPLETE``.
"""

from helixpy.cli import main

if __name__ == "__main__":
    main(prog_name="helixpy")
