"""``python -m attnlab`` (and ``torchrun -m attnlab``) runs the command line."""

from attnlab.cli import main

if __name__ == "__main__":
    main()
