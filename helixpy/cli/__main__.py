"""``python -m helixpy.cli ...`` (tests and LocalCluster start daemons this way)."""

from helixpy.cli import main

if __name__ == "__main__":
    main()
